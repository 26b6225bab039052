using System.Diagnostics;
using System.Text.Json;
using LibTorch;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Data;

/// <summary>
/// The features data set on a real one: scikit-learn's handwritten digits (Debian's
/// python3-sklearn), written by scripts/digits-features.py as CSV and NPY (and here as
/// safetensors); its episodes, class splits, errors, and MAML trained and evaluated on it
/// through the CLI.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class FeatureDatasetTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("features");

    public void Dispose()
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>The digits as OUT/digits.csv, digits.npy + digits.labels.npy and digits.safetensors; the folder.</summary>
    internal static string WriteDigits(string dir)
    {
        Skip.IfNot(File.Exists("/usr/bin/python3") && Process.Start(new ProcessStartInfo("/usr/bin/python3", ["-c", "import sklearn"]) { RedirectStandardError = true })!.WaitForExitAndCode() == 0,
            "needs Debian's python3-sklearn (scripts/setup.sh MetaRun.sln installs it as root)");
        var psi = new ProcessStartInfo("/usr/bin/python3", [Path.Combine(TestPaths.RepoRoot, "scripts", "digits-features.py"), dir]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, err);
        var table = FeatureFiles.Read(Path.Combine(dir, "digits.npy"));
        using var x = Torch.From(table.Values, table.Rows, table.Dim);
        using var y = Torch.From(table.Labels.Select(long.Parse).ToArray(), table.Rows);
        Safetensors.Save(Path.Combine(dir, "digits.safetensors"), new Dictionary<string, Tensor> { ["features"] = x, ["labels"] = y });
        return dir;
    }

    private static DataConfig Data(string root, long splitSeed = 0) => new()
    {
        Dataset = Dataset.Features,
        Root = root,
        SplitRatio = [0.5, 0, 0.5],
        SplitSeed = splitSeed,
        Train = new EpisodeConfig { Ways = 5, Shots = 1, Queries = 5 },
        Test = new EpisodeConfig { Ways = 5, Shots = 1, Queries = 15 },
    };

    [SkippableFact]
    public void The_digits_read_from_csv_npy_and_safetensors_are_the_same_examples_and_episodes()
    {
        WriteDigits(dir);
        var csv = FeatureFiles.Read(Path.Combine(dir, "digits.csv"));
        Assert.Equal((1797, 64), (csv.Rows, csv.Dim));
        Assert.Equal(10, csv.Labels.Distinct().Count());
        foreach (var other in new[] { "digits.npy", "digits.safetensors" })
        {
            var t = FeatureFiles.Read(Path.Combine(dir, other));
            Assert.Equal(csv.Values, t.Values);
            Assert.Equal(csv.Labels, t.Labels);
        }
        using var scope = Torch.NewScope();
        var batches = new[] { "digits.csv", "digits.npy", "digits.safetensors" }.Select(f =>
        {
            using var family = TaskFamilies.Open(Data(Path.Combine(dir, f)), null, 7);
            Assert.Equal([64L], family.InputShape);
            using var b = family.Sample(Split.Test, 3, 2, new EpisodeShape(5, 1, 15));
            return (b.SupportX.ToArray<float>(), b.QueryX.ToArray<float>(), b.QueryY.ToArray<long>());
        }).ToArray();
        foreach (var other in batches.Skip(1))
        {
            Assert.Equal(batches[0].Item1, other.Item1);
            Assert.Equal(batches[0].Item2, other.Item2);
            Assert.Equal(batches[0].Item3, other.Item3);
        }
    }

    [SkippableFact]
    public void Episodes_are_a_pure_function_of_seed_split_and_index()
    {
        var file = Path.Combine(WriteDigits(dir), "digits.csv");
        using var scope = Torch.NewScope();
        var shape = new EpisodeShape(5, 1, 5);
        float[] Episode(long seed, long first, int tasks, int task)
        {
            using var family = TaskFamilies.Open(Data(file), null, seed);
            using var b = family.Sample(Split.Train, first, tasks, shape);
            return b.QueryX[task].ToArray<float>();
        }
        // Episode 6 is the same alone, second in a batch from 5, and after reopening.
        Assert.Equal(Episode(1, 6, 1, 0), Episode(1, 5, 3, 1));
        Assert.NotEqual(Episode(1, 6, 1, 0), Episode(2, 6, 1, 0));
        Assert.NotEqual(Episode(1, 6, 1, 0), Episode(1, 7, 1, 0));
        // Every query is a row of the file, labelled by the class it came from.
        var table = FeatureFiles.Read(file);
        using var fam = TaskFamilies.Open(Data(file), null, 1);
        using var batch = fam.Sample(Split.Test, 0, 1, new EpisodeShape(5, 1, 15));
        var qx = batch.QueryX.ToArray<float>();
        var qy = batch.QueryY.ToArray<long>();
        var classOfLabel = new Dictionary<long, string>();
        for (var e = 0; e < qy.Length; e++)
        {
            var row = Enumerable.Range(0, table.Rows).First(r => table.Values.AsSpan(r * 64, 64).SequenceEqual(qx.AsSpan(e * 64, 64)));
            Assert.Equal(classOfLabel.GetValueOrDefault(qy[e], table.Labels[row]), table.Labels[row]);
            classOfLabel[qy[e]] = table.Labels[row];
        }
        Assert.Equal(5, classOfLabel.Values.Distinct().Count());
    }

    [SkippableFact]
    public void Classes_are_split_by_ratio_with_the_split_seed_alone_and_never_shared()
    {
        var file = Path.Combine(WriteDigits(dir), "digits.csv");
        string[] Names(long splitSeed, Split s) => [.. FeatureDataset.ReadLayout(file, Data(file, splitSeed)).Where(c => c.Split == s).Select(c => c.Name)];
        Assert.Equal(Names(0, Split.Train), Names(0, Split.Train));
        Assert.Equal(5, Names(0, Split.Train).Length);
        Assert.Equal(5, Names(0, Split.Test).Length);
        Assert.Empty(Names(0, Split.Train).Intersect(Names(0, Split.Test)));
        Assert.NotEqual(Names(0, Split.Test), Names(1, Split.Test));
        // The run's seed does not move classes between splits.
        using var a = (FeatureTaskFamily)TaskFamilies.Open(Data(file), null, 1);
        using var b = (FeatureTaskFamily)TaskFamilies.Open(Data(file), null, 2);
        Assert.Equal(a.ClassNames(Split.Test), b.ClassNames(Split.Test));
    }

    [Fact]
    public void A_folder_of_split_files_gives_each_split_its_file_classes()
    {
        File.WriteAllText(Path.Combine(dir, "train.csv"), "x,label,y\n1,cat,2\n3,cat,4\n5,dog,6\n7,dog,8\n");
        File.WriteAllText(Path.Combine(dir, "test.csv"), "label,x,y\nfox,1,1\nfox,2,2\nowl,3,3\nowl,4,4\n");
        var data = new DataConfig { Dataset = Dataset.Features, Root = dir, Train = new() { Ways = 2, Shots = 1, Queries = 1 }, Test = new() { Ways = 2, Shots = 1, Queries = 1 } };
        using var family = (FeatureTaskFamily)TaskFamilies.Open(data, null, 1);
        Assert.Equal(["train/cat", "train/dog"], family.ClassNames(Split.Train));
        Assert.Equal(["test/fox", "test/owl"], family.ClassNames(Split.Test));
        Assert.Equal(0, family.ClassCount(Split.Val));
        using var scope = Torch.NewScope();
        using var batch = family.Sample(Split.Train, 0, 1, new EpisodeShape(2, 1, 1));
        // The 'label' column may be anywhere; the others are the features in their order.
        var rows = batch.SupportX.ToArray<float>().Concat(batch.QueryX.ToArray<float>()).Chunk(2).Select(r => (r[0], r[1])).Order().ToArray();
        Assert.Equal([(1f, 2f), (3f, 4f), (5f, 6f), (7f, 8f)], rows);
    }

    [Theory]
    [InlineData("train.csv", "label,a,b\n0,1,2\n0,1,x\n", "train.csv:3: column 'b' is 'x', not a number")]
    [InlineData("train.csv", "label,a,b\n0,1,2\n0,1\n", "train.csv:3: 2 fields, but the header has 3")]
    [InlineData("train.csv", "a,b\n1,2\n", "train.csv:1: no 'label' column")]
    [InlineData("train.csv", "label,a\n0,1\n1,nan\n", "train.csv:3: column 'a' is nan; features must be finite")]
    [InlineData("train.csv", "label,a\n\"0,1\n", "train.csv:")]
    [InlineData("train.npy", "", "train.labels.npy: not found")]
    [InlineData("train.safetensors", "", "expected tensors 'features'")]
    public void Bad_feature_files_are_data_errors_naming_the_file_and_line(string file, string content, string message)
    {
        var path = Path.Combine(dir, file);
        if (file.EndsWith(".npy")) File.WriteAllBytes(path, NpyFloat32([2, 1], [1f, 2f]));
        else if (file.EndsWith(".safetensors"))
        {
            using var t = Torch.From(new float[] { 1, 2 }, 2, 1);
            Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = t });
        }
        else File.WriteAllText(path, content);
        var e = Assert.Throws<DataException>(() => FeatureFiles.Read(path));
        Assert.Contains(message, e.Message);
        Assert.Contains(dir, e.Message);
    }

    [Fact]
    public void A_class_with_too_few_examples_stops_training_with_exit_3_naming_it()
    {
        File.WriteAllText(Path.Combine(dir, "train.csv"), "label,a\n0,1\n0,2\n1,3\n");
        var (_, config) = TestConfigs.Write($"""
            name: f
            data: {"{"}dataset: features, root: {dir}, train: {"{"}ways: 2, shots: 1, queries: 1{"}"}, test: {"{"}ways: 2, shots: 1, queries: 1{"}"}{"}"}
            algorithm: {"{"}name: maml, iterations: 1{"}"}
            eval: {"{"}interval: 0{"}"}
            """);
        var (code, _, err) = CliRunner.Run("train", config, "--out", Path.Combine(dir, "run"));
        Assert.Equal(ExitCodes.DataProblem, code);
        Assert.Contains("train.csv: class 'train/1' (1 examples, train episodes need 2) has too few examples", err);
    }

    [Fact]
    public void Feature_vectors_take_an_mlp_and_refuse_image_networks_and_keys()
    {
        const string yaml = "name: t\ndata:\n  dataset: features\n  root: x.csv\n  split_ratio: [0.5, 0, 0.5]\nalgorithm:\n  name: maml\n";
        Assert.Equal(ModelName.Auto, ConfigLoader.Parse(yaml, "x.yaml", []).Model.Name);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "x.yaml", ["model.name=conv4"]));
        Assert.Contains("'model.name' is conv4, but data.dataset features is not images", e.Message);
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "x.yaml", ["data.channels=1"]));
        Assert.Contains("'data.channels' is only for data.dataset folder", e.Message);
        // A folder of split files is already split: a ratio as well is refused, naming the key.
        File.WriteAllText(Path.Combine(dir, "train.csv"), "label,a\n0,1\n");
        var data = new DataConfig { Dataset = Dataset.Features, Root = dir, SplitRatio = [0.5, 0, 0.5] };
        Assert.StartsWith("data.split_ratio:", Assert.Throws<ConfigException>(() => TaskFamilies.Open(data, null, 1)).Message);
    }

    [SkippableFact]
    public void Maml_trains_on_five_digits_and_classifies_five_unseen_ones_above_chance_through_the_cli()
    {
        var file = Path.Combine(WriteDigits(dir), "digits.npy");
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", Path.Combine(TestPaths.Configs, "features", "digits-maml-5w1s.yaml"), "--out", run,
            "--set", $"data.root={file}", "--set", "algorithm.iterations=100", "--set", "threads=1");
        Assert.True(code == 0, err);
        var json = Path.Combine(dir, "eval.json");
        (code, _, err) = CliRunner.Run("eval", run, "--episodes", "100", "--out", json);
        Assert.True(code == 0, err);
        var result = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
        // Chance is 0.2; 100 iterations (a second) already reach about 0.5 on the held-out digits.
        Assert.True(result.GetProperty("mean").GetDouble() > 0.35, result.ToString());
    }

    /// <summary>A little-endian float32 .npy as np.save writes it.</summary>
    internal static byte[] NpyFloat32(long[] shape, float[] values)
    {
        var header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({string.Join(", ", shape)}{(shape.Length == 1 ? "," : "")}), }}";
        header = header.PadRight(64 - 10 - 1) + "\n";
        using var ms = new MemoryStream();
        ms.Write([0x93, .. "NUMPY"u8, 1, 0]);
        ms.Write(BitConverter.GetBytes((ushort)header.Length));
        ms.Write(System.Text.Encoding.ASCII.GetBytes(header));
        foreach (var v in values) ms.Write(BitConverter.GetBytes(v));
        return ms.ToArray();
    }
}

internal static class ProcessExtensions
{
    public static int WaitForExitAndCode(this Process p)
    {
        p.WaitForExit();
        return p.ExitCode;
    }
}
