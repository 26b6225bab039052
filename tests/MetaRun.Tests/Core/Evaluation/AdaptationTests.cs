using System.IO.Compression;
using System.Text.Json;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Tests.Cli;
using MetaRun.Tests.Data;
using MetaRun.Training;

namespace MetaRun.Tests.Evaluation;

/// <summary>
/// `metarun adapt` on real Omniglot test characters, written out as PNG folders from the
/// release's zip, gives the accuracy `metarun eval` gives on the same episode, and the same
/// prediction for every query image as the evaluation path (sample, adapt, score).
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class AdaptationTests
{
    [Theory]
    [InlineData("protonet")]
    [InlineData("maml")]
    [InlineData("alfa")]
    [InlineData("matchingnet")]
    // The support LSTM reads the support set in order: adapt must present it as the sampler does.
    [InlineData("matchingnet", "algorithm.fce=true")]
    [InlineData("relationnet")]
    [InlineData("mldg")]
    // The model-based learners: the support folder becomes the sequence's context, in the sampler's order.
    [InlineData("snail")]
    [InlineData("mann")]
    [InlineData("cnp")]
    public void AdaptAgreesWithEvalImageForImage(string algorithm, params string[] extra)
    {
        var dir = TestPaths.NewTempDir("adapt-" + algorithm);
        var run = Path.Combine(dir, "run");
        var args = new List<string> { "train", Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), "--out", run, "--data-root", TestPaths.SharedDatasets };
        string[] sets = [$"algorithm.name={algorithm}", "data.split=lake", "algorithm.iterations=3", "algorithm.meta_batch_size=2", "model.filters=8",
                     "eval.interval=0", "data.train.queries=2", "data.test.queries=3", "threads=1", "workers=1", algorithm switch
                     {
                         "protonet" or "matchingnet" or "relationnet" or "snail" or "mann" or "cnp" => "algorithm.test_inner_steps=0",
                         "alfa" => "algorithm.test_inner_steps=1",   // its per-step rates exist for trained steps only
                         _ => "algorithm.test_inner_steps=2",
                     }, .. extra];
        foreach (var s in sets) args.AddRange(["--set", s]);
        var (code, _, err) = CliRunner.Run([.. args]);
        Assert.True(code == 0, err);

        var evalJson = Path.Combine(dir, "eval.json");
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", run, "--episodes", "1", "--out", evalJson, "--data-root", TestPaths.SharedDatasets);
        Assert.True(code == 0, err);
        var evalAccuracy = JsonDocument.Parse(File.ReadAllText(evalJson)).RootElement.GetProperty("mean").GetDouble();

        // Test episode 0 as the evaluation path sees it: its plan, and the learner's predictions.
        var checkpointFile = RunDirectory.ResolveCheckpoint(run);
        using var checkpoint = Checkpoint.Load(checkpointFile);
        var config = checkpoint.Config;
        config.Data.Root = TestPaths.SharedDatasets;
        Experiment.ApplyProcessSettings(config);
        using var experiment = Experiment.Create(config, null);
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, checkpointFile);
        var family = (ImageTaskFamily)experiment.Family;
        var shape = experiment.TestShape;
        var plan = family.Plan(Split.Test, 0, shape);
        long[] expected;
        using (var scope = Torch.NewScope())
        using (var batch = family.Sample(Split.Test, 0, 1, shape))
        {
            var adapted = experiment.Learner.AdaptTo(new Episode(batch.SupportX[0], batch.SupportY[0], batch.QueryX[0], batch.QueryY[0]));
            expected = adapted.Logits.ArgMax(1).ToArray<long>();
        }

        // The same images as files: support/cJ/sK.png and query/cJ/qI.png, class J = episode label J.
        var support = Path.Combine(dir, "support");
        var query = Path.Combine(dir, "query");
        using (var zip = ZipFile.OpenRead(Path.Combine(TestPaths.SharedDatasets, "omniglot", "images_evaluation.zip")))
        {
            for (var j = 0; j < shape.Ways; j++)
            {
                var character = Omniglot.Characters[family.Classes(Split.Test)[plan.Classes[j]].Source];
                for (var s = 0; s < shape.Shots + shape.Queries; s++)
                {
                    var entry = zip.GetEntry(character.ImagePath(plan.Images[j][s] + 1))!;
                    var target = s < shape.Shots ? Path.Combine(support, $"c{j}", $"s{s}.png") : Path.Combine(query, $"c{j}", $"q{s - shape.Shots:00}.png");
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    entry.ExtractToFile(target);
                }
            }
        }
        var csv = Path.Combine(dir, "predictions.csv");
        (code, var printed, err) = CliRunner.Run("adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", csv);
        Assert.True(code == 0, err);
        Assert.Equal(algorithm is "snail" or "mann" or "cnp", printed.Contains("with no gradient step"));
        var summary = JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(csv, ".json"))).RootElement;
        Assert.Equal(evalAccuracy, summary.GetProperty("accuracy").GetDouble(), 6);
        var predicted = File.ReadAllLines(csv).Skip(1).Select(l => l.Split(',')[1]).ToArray();
        Assert.Equal(expected.Select(e => $"c{e}"), predicted);

        // Each image's predictive entropy is that of its probability columns; "uncertain" is above half of ln(ways).
        var lines = File.ReadAllLines(csv);
        var header = lines[0].Split(',');
        var (entropyAt, uncertainAt) = (Array.IndexOf(header, "entropy"), Array.IndexOf(header, "uncertain"));
        foreach (var line in lines.Skip(1).Select(l => l.Split(',')))
        {
            var p = line[3..(3 + shape.Ways)].Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            var entropy = double.Parse(line[entropyAt], System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(-p.Where(x => x > 0).Sum(x => x * Math.Log(x)), entropy, 4);
            Assert.Equal(entropy > 0.5 * Math.Log(shape.Ways) ? "yes" : "no", line[uncertainAt]);
        }
        Assert.Equal(lines.Length - 1, summary.GetProperty("predictions").GetArrayLength());
        Assert.Equal(lines.Skip(1).Count(l => l.EndsWith(",yes", StringComparison.Ordinal)), summary.GetProperty("uncertain").GetProperty("count").GetInt32());

        // eval's calibration of episode 0 is that of the same predictions.
        var calibration = JsonDocument.Parse(File.ReadAllText(evalJson)).RootElement.GetProperty("calibration");
        using (var scope = Torch.NewScope())
        using (var batch = family.Sample(Split.Test, 0, 1, shape))
        {
            var logits = experiment.Learner.AdaptTo(new Episode(batch.SupportX[0], batch.SupportY[0], batch.QueryX[0], batch.QueryY[0])).Logits;
            var nll = F.CrossEntropy(logits, batch.QueryY[0]).Item();
            Assert.Equal(nll, calibration.GetProperty("nll").GetDouble(), 4);
        }
        Directory.Delete(dir, recursive: true);
    }
}

/// <summary>`metarun adapt` on a features checkpoint: support and query are features files (the handwritten digits of scikit-learn).</summary>
[Collection(ProcessWideCollection.Name)]
public class FeatureAdaptationTests
{
    [SkippableFact]
    public void A_features_checkpoint_adapts_to_a_labelled_file_and_classifies_a_query_file_row_by_row()
    {
        var dir = FeatureDatasetTests.WriteDigits(TestPaths.NewTempDir("adapt-features"));
        var run = Path.Combine(dir, "run");
        var config = Path.Combine(dir, "protonet.yaml");
        File.WriteAllText(config, $$"""
            data:
              dataset: features
              root: {{Path.Combine(dir, "digits.npy")}}
              split_ratio: [0.5, 0, 0.5]
              train: {ways: 5, shots: 1, queries: 5}
            model: {name: mlp, hidden: [64, 64]}
            algorithm: {name: protonet, iterations: 3}
            eval: {interval: 0}
            threads: 1
            """);
        var (code, _, err) = CliRunner.Run("train", config, "--out", run);
        Assert.True(code == 0, err);

        // Digits 5–9, five rows each as the support (written out of class order) and ten more each as the query; two query rows of unknown class.
        var table = FeatureFiles.Read(Path.Combine(dir, "digits.npy"));
        var byClass = Enumerable.Range(5, 5).ToDictionary(d => d.ToString(), d => Enumerable.Range(0, table.Rows).Where(i => table.Labels[i] == d.ToString()).ToArray());
        string Row(int i, string label) => string.Join(",", table.Values.AsSpan(i * table.Dim, table.Dim).ToArray().Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "," + label;
        var header = string.Join(",", Enumerable.Range(0, table.Dim).Select(f => $"f{f}")) + ",label";
        var support = Path.Combine(dir, "support.csv");
        File.WriteAllLines(support, [header, .. byClass.Reverse().SelectMany(kv => kv.Value.Take(5).Select(i => Row(i, kv.Key)))]);
        var query = Path.Combine(dir, "query.csv");
        File.WriteAllLines(query, [header, .. byClass.SelectMany(kv => kv.Value.Skip(5).Take(10).Select(i => Row(i, kv.Key)))]);

        var csv = Path.Combine(dir, "predictions.csv");
        var saved = Path.Combine(dir, "adapted.safetensors");
        (code, var output, err) = CliRunner.Run("adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", csv, "--save-adapted", saved);
        Assert.True(code == 0, err);
        Assert.Contains("protonet adapted to 5 classes (5: 5, 6: 5, 7: 5, 8: 5, 9: 5 examples)", output);
        var json = JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(csv, ".json"))).RootElement;
        // Nearest prototypes on these digits are far above chance (0.2) even from a barely trained body; scrambled labels or rows would not be.
        Assert.True(json.GetProperty("accuracy").GetDouble() >= 0.7, output);
        var lines = File.ReadAllLines(csv);
        Assert.Equal(51, lines.Length);
        Assert.StartsWith("row 1,", lines[1]);
        // The adapted prototypes leave MetaRun as an ONNX classifier.
        (code, _, err) = CliRunner.Run("export", "--checkpoint", run, "--adapted", saved, "--onnx", Path.Combine(dir, "digits.onnx"));
        Assert.True(code == 0, err);

        // Rows of unknown class ('?') are classified without an accuracy; a class the support lacks is refused, naming it.
        File.WriteAllLines(query, [header, Row(byClass["5"][20], "?"), Row(byClass["9"][20], "?")]);
        (code, output, err) = CliRunner.Run("adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", csv);
        Assert.True(code == 0, err);
        Assert.Contains("2 query examples:", output);
        File.WriteAllLines(query, [header, Row(byClass["5"][20], "3")]);
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", csv);
        Assert.Equal(ExitCodes.DataProblem, code);
        Assert.Contains("query class '3' is not one of the support classes (5, 6, 7, 8, 9)", err);
        // A folder where a features file belongs is one clear line.
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", run, "--support", Directory.CreateDirectory(Path.Combine(dir, "folder")).FullName, "--query", query, "--out", csv);
        Assert.Equal(ExitCodes.DataProblem, code);
        Assert.Contains("a features checkpoint adapts to a features file", err);
    }
}
