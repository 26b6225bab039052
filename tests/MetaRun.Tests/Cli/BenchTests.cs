using System.Text.Json;

namespace MetaRun.Tests.Cli;

/// <summary>`metarun bench` times what `train` runs, for episode learners and the baseline alike.</summary>
[Collection(ProcessWideCollection.Name)]
public class BenchTests
{
    private static JsonElement Bench(string name, params string[] extra) => Bench(name, out _, extra);

    private static JsonElement Bench(string name, out string output, params string[] extra)
    {
        var json = Path.Combine(TestPaths.NewTempDir("bench-" + name), "bench.json");
        string[] args = ["bench", Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), "--data-root", TestPaths.SharedDatasets,
            "--iterations", "2", "--warmup", "1", "--out", json, "--set", $"algorithm.name={name}", "--set", "model.filters=8", "--set", "algorithm.meta_batch_size=4"];
        foreach (var s in extra) args = [.. args, "--set", s];
        (var code, output, var err) = CliRunner.Run(args);
        Assert.True(code == 0, err);
        Assert.Contains("seconds per meta-iteration", output);
        return JsonDocument.Parse(File.ReadAllText(json)).RootElement;
    }

    [Fact]
    public void AMetricLearnerIsNotDescribedWithInnerSteps()
    {
        Bench("protonet", out var output);
        Assert.DoesNotContain("inner step", output);
        Bench("fomaml", out output);
        Assert.Contains("1 inner step(s)", output);
    }

    [Fact]
    public void BaselineIsTimedOnItsOwnBatchesWithOneWorkerOnAllCores()
    {
        var r = Bench("baseline", "algorithm.batch_size=6");
        // One ordinary batch per step: nothing to spread over workers (it used to time episodes instead).
        Assert.Equal(1, r.GetProperty("workers").GetInt32());
        Assert.Equal(Environment.ProcessorCount, r.GetProperty("torch_threads").GetInt32());
        Assert.Equal(1, r.GetProperty("tasks_per_iteration").GetInt32());
    }

    [Fact]
    public void EpisodeLearnersSpreadTheMetaBatchOverTheCores()
    {
        var r = Bench("maml");
        Assert.Equal(Environment.ProcessorCount, r.GetProperty("workers").GetInt32());
        Assert.Equal(1, r.GetProperty("torch_threads").GetInt32());
        Assert.Equal(4, r.GetProperty("tasks_per_iteration").GetInt32());
        // The batched mode is timed beside it: one computation on all the cores.
        Assert.Equal("per_task", r.GetProperty("execution").GetString());
        var batched = r.GetProperty("modes").GetProperty("batched");
        Assert.True(batched.GetProperty("median_seconds").GetDouble() > 0);
        Assert.Equal(1, batched.GetProperty("workers").GetInt32());
        Assert.Equal(Environment.ProcessorCount, batched.GetProperty("torch_threads").GetInt32());
    }
}
