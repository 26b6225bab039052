using System.Text.Json;
using MetaRun.Sweeps;

namespace MetaRun.Tests.Sweeps;

/// <summary>
/// A sweep folder run again with a changed sweep: a changed base config is refused, naming the
/// difference, before anything starts; a changed final evaluation re-runs only the evaluation.
/// </summary>
public sealed class SweepChangeTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(4);

    private static string Write(string dir, string hidden, string seeds, int episodes)
    {
        var config = Path.Combine(dir, "base.yaml");
        File.WriteAllText(config, File.ReadAllText(SweepTestSupport.SinusoidConfig).Replace("hidden: [40, 40]", $"hidden: {hidden}"));
        var path = Path.Combine(dir, "changed.yaml");
        File.WriteAllText(path, $$"""
            name: changed
            config: base.yaml
            out: {{Path.Combine(dir, "changed")}}
            set: [algorithm.iterations=20, eval.interval=10, eval.episodes=5, checkpoint.interval=10, algorithm.meta_batch_size=5]
            eval: {split: test, episodes: {{episodes}}}
            seeds: {{seeds}}
            """);
        return path;
    }

    [Fact]
    public void AChangedBaseConfigIsRefusedAndAChangedEvaluationReRunsOnlyTheEvaluation()
    {
        var dir = TestPaths.NewTempDir("sweepchange");
        var folder = Path.Combine(dir, "changed");
        var (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", Write(dir, "[40, 40]", "[1]", 5));
        Assert.True(code == 0, output);
        var run = SweepManifest.Read(folder)!.Runs.Single();
        var trained = SweepTestSupport.Snapshot(Path.Combine(run.Dir, "checkpoints"));
        var metrics = File.ReadAllBytes(Path.Combine(run.Dir, "metrics.csv"));

        // A smaller model and another seed: the new seed would train the new model beside the old one.
        (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", Write(dir, "[20, 20]", "[1, 2]", 5));
        Assert.True(code == 2, output);
        Assert.Contains("model.hidden: [40, 40] → [20, 20]", output);
        Assert.Contains(run.Name, output);
        Assert.False(Directory.Exists(Path.Combine(folder, "seed=2")));
        Assert.Single(SweepManifest.Read(folder)!.Runs);

        // The same sweep with another evaluation: the trained run stands, its evaluation is redone.
        (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", Write(dir, "[40, 40]", "[1]", 7));
        Assert.True(code == 0, output);
        Assert.Contains("re-running only the evaluation", output);
        using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.Dir, "checkpoints", "eval.json"))))
            Assert.Equal(7, json.RootElement.GetProperty("episodes").GetInt32());
        Assert.Equal(metrics, File.ReadAllBytes(Path.Combine(run.Dir, "metrics.csv")));
        var after = SweepTestSupport.Snapshot(Path.Combine(run.Dir, "checkpoints"));
        Assert.Equal(trained["last.safetensors"], after["last.safetensors"]);
        var again = SweepManifest.Read(folder)!.Runs.Single();
        Assert.Equal((1, 0, RunState.Done), (again.Starts, again.Resumes, again.State));

        // And once more with nothing changed: nothing runs.
        (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", Write(dir, "[40, 40]", "[1]", 7));
        Assert.True(code == 0, output);
        Assert.Contains("1/1 done (1 already finished)", output);
    }
}
