using MetaRun.Sweeps;

namespace MetaRun.Tests.Sweeps;

/// <summary>Sweeps that start real child processes share the cores; they run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SweepCollection
{
    public const string Name = "sweeps";
}

[Collection(SweepCollection.Name)]
public sealed class SweepRunnerTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(4);

    [Fact]
    public void AKilledSweepCompletesOnRerunWithoutStartingAnyRunTwiceOrTouchingFinishedOnes()
    {
        var dir = TestPaths.NewTempDir("sweepkill");
        var file = SweepTestSupport.WriteSweep(dir, "kill", """
            grid:
              algorithm.inner_lr: [0.01, 0.02]
            seeds: [1, 2]
            """, iterations: 300);
        var folder = Path.Combine(dir, "kill");

        // Kill the whole process group (the sweep and its train child), as Ctrl-C or a reboot
        // would, once one run has finished and the next has written a checkpoint.
        var sweep = SweepTestSupport.Start(dir, "sweep", file, "--parallel", "1");
        ManifestRun? victim = null;
        var ready = SweepTestSupport.WaitUntil(() =>
        {
            var m = SweepManifest.Read(folder);
            victim = m?.Runs.FirstOrDefault(r => r.State == RunState.Running && File.Exists(Path.Combine(r.Dir, "checkpoints", "last.safetensors")));
            return m != null && m.Runs.Any(r => r.State == RunState.Done) && victim != null;
        }, Limit);
        SweepTestSupport.KillGroup(sweep.Id);
        sweep.WaitForExit();
        Assert.True(ready, "the sweep never had a finished run and a running one with a checkpoint");

        var before = SweepManifest.Read(folder)!;
        var finished = before.Runs.Where(r => r.State == RunState.Done).ToList();
        var snapshots = finished.ToDictionary(r => r.Name, r => SweepTestSupport.Snapshot(r.Dir));
        Assert.DoesNotContain(before.Runs, r => r.State == RunState.Done && r.Name == victim!.Name);

        var (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", file, "--parallel", "1");
        Assert.True(code == 0, output);
        Assert.Contains($"{finished.Count} already finished", output);

        var after = SweepManifest.Read(folder)!;
        Assert.Equal(4, after.Runs.Count);
        foreach (var r in after.Runs)
        {
            Assert.Equal(RunState.Done, r.State);
            Assert.Equal(1, r.Starts);
            // A run starts from scratch exactly once: one "iterations 1.." line in its log.
            var log = File.ReadAllLines(Path.Combine(r.Dir, "train.log"));
            Assert.Single(log, l => l.Contains(", iterations 1..300,"));
            Assert.True(File.Exists(Path.Combine(r.Dir, "checkpoints", "eval.json")), r.Name);
            var iterations = File.ReadAllLines(Path.Combine(r.Dir, "metrics.csv")).Skip(1).Select(l => long.Parse(l.Split(',')[0])).ToList();
            Assert.Equal(Enumerable.Range(1, 300).Select(i => (long)i), iterations);
        }
        Assert.Equal(1, after.Runs.Single(r => r.Name == victim!.Name).Resumes);
        Assert.Contains(after.Runs.Single(r => r.Name == victim!.Name).Dir, File.ReadAllText(Path.Combine(folder, "logs", victim!.Name + ".log")).Split('\n').Where(l => l.Contains("--resume")).Single());
        foreach (var r in finished)
        {
            Assert.Equal(0, after.Runs.Single(a => a.Name == r.Name).Resumes);
            Assert.Equal(snapshots[r.Name], SweepTestSupport.Snapshot(r.Dir));
        }

        // A third time there is nothing left to do.
        var (code3, output3) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", file);
        Assert.True(code3 == 0, output3);
        Assert.Contains("4/4 done (4 already finished)", output3);
    }

    [Fact]
    public void AFailingRunDoesNotStopTheOthersAndTheSummaryShowsItsLog()
    {
        var dir = TestPaths.NewTempDir("sweepfail");
        var file = SweepTestSupport.WriteSweep(dir, "fail", """
            list:
              - {algorithm.inner_lr: 0.01}
              - {algorithm.inner_lr: 1000, algorithm.inner_steps: 5}
              - {algorithm.inner_lr: 0.02}
            """);
        var (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", file, "--parallel", "2");
        Assert.True(code == ExitCodes.Failure, output);
        Assert.Contains("2/3 done (0 already finished), 1 failed", output);
        Assert.Contains("FAILED inner_lr=1000_inner_steps=5_seed=1 (combination 2, exit 1)", output);
        Assert.Contains("training diverged at iteration 1", output);

        var m = SweepManifest.Read(Path.Combine(dir, "fail"))!;
        Assert.Equal([RunState.Done, RunState.Failed, RunState.Done], m.Runs.Select(r => r.State));
        // Two at a time: each run sized itself to half the cores.
        var share = Math.Max(1, Environment.ProcessorCount / 2);
        Assert.Contains($"device cpu, {share} workers × 1 threads", File.ReadAllText(Path.Combine(m.Runs[0].Dir, "train.log")));
        Assert.Equal(1, m.Runs[1].ExitCode);
        Assert.Contains("diverged", m.Runs[1].Failure);
    }
}
