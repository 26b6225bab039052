using System.Diagnostics;
using MetaRun.Config;
using MetaRun.Sweeps;

namespace MetaRun.Tests.Sweeps;

/// <summary>
/// Real Slurm: scripts/slurm-local.sh starts munge, slurmctld and slurmd as a one-node cluster on
/// this machine, and the sweeps go through sbatch as real job arrays.
/// </summary>
[Collection(SweepCollection.Name)]
public sealed class SlurmLauncherTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(5);

    private static void StartCluster()
    {
        Skip.IfNot(Environment.UserName == "root",
            "the Slurm tests start munge, slurmctld and slurmd and so need root; run the suite as root (CI does) to include them");
        var script = Path.Combine(TestPaths.RepoRoot, "scripts", "slurm-local.sh");
        using var p = Process.Start(new ProcessStartInfo(script) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"scripts/slurm-local.sh failed (exit {p.ExitCode}); scripts/setup.sh installs slurm-wlm and munge as root:\n{err}");
    }

    private static string Submit(string dir, string file)
    {
        var (code, output) = SweepTestSupport.RunToEnd(dir, TimeSpan.FromMinutes(1), "sweep", file, "--launcher", "slurm");
        Assert.True(code == 0, output);
        var line = output.Split('\n').Single(l => l.StartsWith("submitted job array ", StringComparison.Ordinal));
        var jobId = line.Split(' ')[3];
        var gone = SweepTestSupport.WaitUntil(() =>
        {
            using var q = Process.Start(new ProcessStartInfo("squeue", ["-h", "-j", jobId]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var text = q.StandardOutput.ReadToEnd();
            q.WaitForExit();
            return q.ExitCode == 0 && text.Trim().Length == 0;
        }, Limit);
        Assert.True(gone, $"job array {jobId} still in the queue after {Limit}");
        return jobId;
    }

    [SkippableFact]
    public void ATwoByTwoGridTimesTwoSeedsRunsAsOneJobArray()
    {
        StartCluster();
        var dir = TestPaths.NewTempDir("slurm");
        var file = SweepTestSupport.WriteSweep(dir, "grid", """
            grid:
              algorithm.inner_lr: [0.01, 0.02]
              algorithm.outer_lr: [0.001, 0.002]
            seeds: [1, 2]
            slurm: {cpus_per_task: 1, time: "00:10:00", throttle: 4}
            """, iterations: 30);
        var jobId = Submit(dir, file);

        var folder = Path.Combine(dir, "grid");
        var script = Directory.GetFiles(Path.Combine(folder, "slurm"), "*.sbatch").Single();
        Assert.Contains("#SBATCH --array=0-7%4", File.ReadAllText(script));
        var m = SweepManifest.Read(folder)!;
        Assert.Equal([jobId], m.SlurmJobs);
        Assert.Equal(8, m.Runs.Count);
        foreach (var r in m.Runs)
        {
            Assert.True(r.State == RunState.Done, $"{r.Name}: {r.State}\n{r.Failure}");
            Assert.Equal($"{jobId}_{r.Index}", r.JobId);
            Assert.Equal(1, r.Starts);
            Assert.True(File.Exists(Path.Combine(folder, "logs", $"slurm-{jobId}_{r.Index}.out")));
            var config = ConfigLoader.Load(Path.Combine(r.Dir, "config.yaml"));
            Assert.Equal(double.Parse(r.Varying["algorithm.inner_lr"]), config.Algorithm.InnerLr);
            Assert.Equal(double.Parse(r.Varying["algorithm.outer_lr"]), config.Algorithm.OuterLr);
            Assert.Equal(r.Seed, config.Seed);
            Assert.Equal(30, config.Algorithm.Iterations);
            Assert.True(File.Exists(Path.Combine(r.Dir, "checkpoints", "last.safetensors")));
            var eval = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(r.Dir, "checkpoints", "eval.json"))).RootElement;
            Assert.Equal(20, eval.GetProperty("episodes").GetInt32());
            Assert.InRange(eval.GetProperty("iteration").GetInt64(), 1, 30);
        }
        Assert.Equal(8, m.Runs.Select(r => r.Dir).Distinct().Count());

        var (code, status) = SweepTestSupport.RunToEnd(dir, TimeSpan.FromMinutes(1), "sweep", file, "--status");
        Assert.True(code == 0, status);
        Assert.Contains("8 runs: 8 done", status);
        // Submitting again finds nothing to do.
        var (code2, again) = SweepTestSupport.RunToEnd(dir, TimeSpan.FromMinutes(1), "sweep", file, "--launcher", "slurm");
        Assert.True(code2 == 0, again);
        Assert.Contains("nothing to submit", again);
    }

    [SkippableFact]
    public void AFailingCombinationFailsItsArrayTaskOnly()
    {
        StartCluster();
        var dir = TestPaths.NewTempDir("slurmfail");
        var file = SweepTestSupport.WriteSweep(dir, "fail", """
            list:
              - {algorithm.inner_lr: 0.01}
              - {algorithm.inner_lr: 1000, algorithm.inner_steps: 5}
            slurm: {cpus_per_task: 1}
            """, iterations: 20);
        var jobId = Submit(dir, file);

        var m = SweepManifest.Read(Path.Combine(dir, "fail"))!;
        Assert.Equal([RunState.Done, RunState.Failed], m.Runs.Select(r => r.State));
        Assert.Equal(1, m.Runs[1].ExitCode);
        Assert.Contains("training diverged at iteration 1", m.Runs[1].Failure);
        Assert.Equal($"{jobId}_1", m.Runs[1].JobId);
        var (_, status) = SweepTestSupport.RunToEnd(dir, TimeSpan.FromMinutes(1), "sweep", file, "--status");
        Assert.Contains("2 runs: 1 done, 1 failed", status);
    }
}
