using System.Text.Json;
using MetaRun.Config;
using MetaRun.Tests.Cli;
using MetaRun.Training;

namespace MetaRun.Tests.Training;

/// <summary>A training run driven through Core alone (no command line): start, crash, resume from the folder.</summary>
[Collection(ProcessWideCollection.Name)]
public class TrainingRunTests
{
    // A few validations and checkpoints, so a crash between them has something to resume from.
    private static readonly string[] Settings =
        ["algorithm.iterations=8", "algorithm.inner_lr=0.01", "eval.interval=4", "eval.episodes=4", "checkpoint.interval=2", "threads=1", "data.test.shots=5", "data.test.queries=5"];

    private static string Config(string dir)
    {
        var path = Path.Combine(dir, "c.yaml");
        File.WriteAllText(path, TestConfigs.TinySinusoid);
        return path;
    }

    private static byte[] Weights(string runDir)
    {
        using var c = Checkpoint.Load(Path.Combine(runDir, "checkpoints", "last.safetensors"));
        return c.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToBytes()).ToArray();
    }

    // A new run takes the settings above; a resume gets only the sets it is given.
    private static TrainingRun Start(string? config, string? outDir, string? resumeDir, params string[] sets) =>
        TrainingRun.Start(new TrainingRequest(config, config != null ? [.. Settings, .. sets] : sets, outDir, resumeDir, null, false), _ => { });

    [Fact]
    public void ResumingFromTheFolderAloneEndsBitIdenticalToAnUninterruptedRun()
    {
        var dir = TestPaths.NewTempDir("trainingrun");
        var config = Config(dir);
        var straight = Path.Combine(dir, "straight");
        using (var run = Start(config, straight, null)) run.Train(null, default);

        var crashed = Path.Combine(dir, "crashed");
        using (var run = Start(config, crashed, null))
            Assert.Throws<InvalidOperationException>(() => run.Train(new CrashAfter(5), default));
        // No config, no --set: the run's own config.yaml.
        using (var run = Start(null, null, crashed))
        {
            run.Train(null, default);
            Assert.Null(run.StoppedAt);
        }
        Assert.Equal(Weights(straight), Weights(crashed));
    }

    // Real Omniglot, meta-batches batched: with 16 filters conv4's first-order passes (FOMAML's both
    // passes, MAML's query pass) take the blocked convolution stack.
    [Theory]
    [InlineData("fomaml")]
    [InlineData("maml")]
    public void A_batched_omniglot_run_through_the_convolution_stack_resumes_bit_identical(string algorithm)
    {
        var dir = TestPaths.NewTempDir("trainingrun");
        var config = Path.Combine(dir, "c.yaml");
        File.WriteAllText(config, $$$"""
            name: stack
            seed: 3
            threads: 1
            workers: 2
            execution: batched
            data: {dataset: omniglot, split: vinyals, train: {ways: 5, shots: 1, queries: 1}, test: {ways: 5, shots: 1, queries: 1}}
            model: {name: conv4, filters: 16, downsample: stride}
            algorithm: {name: {{{algorithm}}}, inner_lr: 0.4, inner_steps: 1, meta_batch_size: 8, iterations: 6}
            eval: {interval: 0}
            checkpoint: {interval: 2}
            """);
        TrainingRun Run(string? c, string? outDir, string? resume) =>
            TrainingRun.Start(new TrainingRequest(c, [], outDir, resume, TestPaths.SharedDatasets, false), _ => { });
        var straight = Path.Combine(dir, "straight");
        using (var run = Run(config, straight, null)) run.Train(null, default);
        var crashed = Path.Combine(dir, "crashed");
        using (var run = Run(config, crashed, null))
            Assert.Throws<InvalidOperationException>(() => run.Train(new CrashAfter(3), default));
        using (var run = Run(null, null, crashed)) run.Train(null, default);
        Assert.Equal(Weights(straight), Weights(crashed));
    }

    [Fact]
    public void ResumingWithAChangedInnerRateIsRefusedShowingBothValuesAndWritesNothing()
    {
        var dir = TestPaths.NewTempDir("trainingrun");
        var run = Path.Combine(dir, "run");
        using (var r = Start(Config(dir), run, null)) r.Train(null, default);
        var before = Directory.GetFiles(run, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

        var e = Assert.Throws<ConfigException>(() => Start(null, null, run, "algorithm.inner_lr=0.02"));
        Assert.Equal(ExitCodes.BadUsage, e.ExitCode);
        Assert.Contains("algorithm.inner_lr is '0.01' in the run, '0.02' with --set", e.Message);
        foreach (var (f, bytes) in before) Assert.True(bytes.SequenceEqual(File.ReadAllBytes(f)), $"{f} was changed");
    }

    [Fact]
    public void TheRunFolderRecordsHowItWasMadeAndWhatAResumeChanged()
    {
        var dir = TestPaths.NewTempDir("trainingrun");
        var run = Path.Combine(dir, "run");
        using (var r = Start(Config(dir), run, null)) r.Train(null, default);
        using (var r = Start(null, null, run, "algorithm.iterations=10"))
        {
            r.Train(null, default);
            Assert.Equal(ShellCommand.Of("train", "--resume", run), r.ResumeCommand);
            Assert.Equal(ShellCommand.Of("eval", run), r.EvaluateCommand);
        }

        var events = File.ReadAllLines(Path.Combine(run, Provenance.FileName)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["start", "finished", "resume", "finished"], events.Select(e => e.GetProperty("event").GetString()));
        var start = events[0];
        foreach (var key in new[] { "time", "command", "cwd", "metarun", "libtorch", "libtorch_build", "device", "host" })
            Assert.False(string.IsNullOrEmpty(start.GetProperty(key).ToString()), $"{key} is empty");
        Assert.Equal("sinusoid", start.GetProperty("data").GetProperty("dataset").GetString());
        var change = events[2].GetProperty("changes").GetProperty("algorithm.iterations");
        Assert.Equal(["8", "10"], change.EnumerateArray().Select(v => v.GetString()));
        Assert.Equal(10, events[3].GetProperty("iteration").GetInt64());
        // config.yaml follows the allowed change.
        Assert.Equal(10, ConfigLoader.Load(Path.Combine(run, "config.yaml"), []).Algorithm.Iterations);
    }

    [Fact]
    public void ADataSetsFingerprintChangesWithItsFiles()
    {
        var dir = TestPaths.NewTempDir("fingerprint");
        var data = new DataConfig { Dataset = Dataset.Omniglot };
        Directory.CreateDirectory(Path.Combine(dir, "omniglot"));
        File.WriteAllText(Path.Combine(dir, "omniglot", "images_background.zip"), "one");
        var a = Provenance.DataIdentity(data, dir)["fingerprint"]!.ToString();
        File.WriteAllText(Path.Combine(dir, "omniglot", "images_background.zip"), "two");
        var b = Provenance.DataIdentity(data, dir)["fingerprint"]!.ToString();
        Assert.NotEqual(a, b);
        Assert.Equal(Path.Combine(dir, "omniglot"), Provenance.DataIdentity(data, dir)["path"]!.ToString());
    }

    [Fact]
    public void ARegressionRunLogsTheIntervalOfItsValidationMse()
    {
        var dir = TestPaths.NewTempDir("trainingrun");
        var run = Path.Combine(dir, "run");
        using (var r = Start(Config(dir), run, null)) r.Train(null, default);
        var rows = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        var column = Array.IndexOf(rows[0].Split(','), "val_ci95");
        var validated = rows.Skip(1).Select(l => l.Split(',')).Where(c => c[3].Length > 0).ToList();
        Assert.Equal(2, validated.Count);
        Assert.All(validated, c => Assert.True(double.Parse(c[column], System.Globalization.CultureInfo.InvariantCulture) > 0, string.Join(",", c)));
    }
}
