using System.Text.Json;
using MetaRun.Cli.Commands;
using MetaRun.Tests.Data;

namespace MetaRun.Tests.Cli.Commands;

/// <summary>`metarun bench` times what `train` runs, for episode learners and the baseline alike.</summary>
[Collection(ProcessWideCollection.Name)]
public class BenchCommandTests
{
    private static JsonElement Bench(string name, params string[] extra) => Bench(name, out _, extra);

    private static JsonElement Bench(string name, out string output, params string[] extra)
    {
        var config = name == "protonet" ? "protonet-5w1s-cpu.yaml" : "maml-5w1s.yaml";
        var json = Path.Combine(TestPaths.NewTempDir("bench-" + name), "bench.json");
        string[] args = ["bench", Path.Combine(TestPaths.Configs, "omniglot", config), "--data-root", TestPaths.SharedDatasets,
            "--iterations", "2", "--warmup", "1", "--out", json, "--set", $"algorithm.name={name}", "--set", "model.filters=8", "--set", "algorithm.meta_batch_size=4"];
        foreach (var s in extra) args = [.. args, "--set", s];
        (var code, output, var err) = CliRunner.Run(args);
        Assert.True(code == 0, err);
        Assert.Contains("seconds per meta-iteration", output);
        return JsonDocument.Parse(File.ReadAllText(json)).RootElement;
    }

    [Fact]
    public void Bench_reports_the_peak_memory_of_a_meta_iteration_with_checkpointed_inner_steps()
    {
        // In a process of its own: inside the test host the heap has room to spare from other
        // tests, so a meta-iteration need not raise the peak at all.
        var path = Path.Combine(TestPaths.NewTempDir("bench-peak"), "bench.json");
        var (code, output) = MetaRun.Tests.Distributed.Metarun.Run(["bench", Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), "--data-root", TestPaths.SharedDatasets,
            "--iterations", "2", "--warmup", "1", "--out", path, "--set", "algorithm.name=maml", "--set", "model.filters=8", "--set", "algorithm.meta_batch_size=4",
            "--set", "algorithm.inner_steps=3", "--set", "algorithm.checkpoint_inner_steps=true"]);
        Assert.True(code == 0, output);
        Assert.Contains("peak memory of a meta-iteration", output);
        var json = JsonDocument.Parse(File.ReadAllText(path)).RootElement;
        var (peak, before, growth) = (json.GetProperty("peak_rss_mb").GetDouble(), json.GetProperty("rss_before_first_iteration_mb").GetDouble(), json.GetProperty("peak_growth_mb").GetDouble());
        Assert.True(growth > 0 && before > 0, $"peak {peak} MB, before {before} MB");
        Assert.Equal(peak - before, growth, 0.2);
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
        // Batched by default, in runs of tasks on single-threaded workers; the per-task mode is timed beside it, on the same layout.
        Assert.Equal("batched", r.GetProperty("execution").GetString());
        var perTask = r.GetProperty("modes").GetProperty("per_task");
        Assert.True(perTask.GetProperty("median_seconds").GetDouble() > 0);
        Assert.Equal(Environment.ProcessorCount, perTask.GetProperty("workers").GetInt32());
        Assert.Equal(1, perTask.GetProperty("torch_threads").GetInt32());
    }

    [Fact]
    public void DataBenchWritesItsFigures()
    {
        using var dir = new TempDir("bench-data");
        var root = MiniImageNetBuilder.Build(dir.Sub("root"));
        var config = dir.Sub("mini.yaml");
        File.WriteAllText(config, $"data:\n  dataset: miniimagenet\n  root: {root}\n  image_size: 16\n  train: {{ways: 2, shots: 1, queries: 2}}\n  test: {{ways: 2}}\nalgorithm:\n  meta_batch_size: 4\n");
        var json = dir.Sub("bench-data.json");
        var output = new StringWriter();
        Assert.Equal(ExitCodes.Success, BenchCommand.RunData(config, [], null, 200, output, json));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var r = doc.RootElement;
        Assert.Equal("miniimagenet", r.GetProperty("dataset").GetString());
        Assert.Equal(42, r.GetProperty("images").GetInt32());
        Assert.Equal(200, r.GetProperty("episodes").GetInt32());
        Assert.True(r.GetProperty("episodes_per_second").GetDouble() > 0);
        Assert.True(r.GetProperty("prepare_seconds").GetDouble() > 0);
        Assert.Contains("episodes/s", output.ToString());
    }
}
