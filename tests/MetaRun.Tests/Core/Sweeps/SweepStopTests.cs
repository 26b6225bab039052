using System.Diagnostics;
using MetaRun.Sweeps;
using MetaRun.Training;

namespace MetaRun.Tests.Sweeps;

/// <summary>
/// Stopping a real local sweep with a signal: the first one lets the running `train` finish its
/// step and save it in checkpoints/last (nothing since the last periodic checkpoint is lost); a
/// second one stops at once. Neither leaves a partial checkpoint (*.tmp).
/// </summary>
public sealed class SweepStopTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(4);

    /// <summary>One run far too long to finish, saving every 50 iterations, no validation.</summary>
    private static string LongSweep(string dir)
    {
        var path = Path.Combine(dir, "long.yaml");
        File.WriteAllText(path, $"""
            name: long
            config: {SweepTestSupport.SinusoidConfig}
            out: {Path.Combine(dir, "long")}
            set: [algorithm.iterations=1000000, eval.interval=0, checkpoint.interval=50, algorithm.meta_batch_size=5]
            eval: {"{"}split: test, episodes: 0{"}"}
            seeds: [1]
            """);
        return path;
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", pid.ToString()])!;
        kill.WaitForExit();
    }

    /// <summary>Starts the sweep and waits until its run has saved a periodic checkpoint past iteration 100.</summary>
    private static (Process Sweep, string RunDir) StartAndWait(string dir, string file)
    {
        var sweep = SweepTestSupport.Start(dir, "sweep", file);
        var folder = Path.Combine(dir, "long");
        string? runDir = null;
        var ready = SweepTestSupport.WaitUntil(() =>
        {
            runDir = SweepManifest.Read(folder)?.Runs.SingleOrDefault()?.Dir;
            if (runDir == null || !File.Exists(Path.Combine(runDir, "checkpoints", "last.safetensors"))) return false;
            try
            {
                using var ck = Checkpoint.Load(Path.Combine(runDir, "checkpoints", "last.safetensors"));
                return ck.Iteration >= 100;
            }
            catch (MetaRunException) { return false; }
            catch (IOException) { return false; }
        }, Limit);
        if (!ready) SweepTestSupport.KillGroup(sweep.Id);
        Assert.True(ready, "the sweep's run never saved a checkpoint");
        return (sweep, runDir!);
    }

    private static string Finish(Process sweep)
    {
        var output = sweep.StandardOutput.ReadToEndAsync();
        var error = sweep.StandardError.ReadToEndAsync();
        if (!sweep.WaitForExit(Limit))
        {
            SweepTestSupport.KillGroup(sweep.Id);
            Assert.Fail("the stopped sweep did not exit");
        }
        return output.Result + error.Result;
    }

    [Fact]
    public void SigtermLetsTheRunningRunSaveItsLatestStepBeforeTheSweepExits()
    {
        var dir = TestPaths.NewTempDir("sweepstop");
        var file = LongSweep(dir);
        var (sweep, runDir) = StartAndWait(dir, file);
        Signal(sweep.Id, "TERM");
        var output = Finish(sweep);
        Assert.True(sweep.ExitCode == 130, output);

        var run = SweepManifest.Read(Path.Combine(dir, "long"))!.Runs.Single();
        Assert.Equal(RunState.Interrupted, run.State);
        // The child stopped on its own terms (SIGTERM's code), not killed (137).
        Assert.Equal(143, run.ExitCode);
        using (var last = Checkpoint.Load(Path.Combine(runDir, "checkpoints", "last.safetensors")))
        {
            var log = File.ReadAllText(Path.Combine(dir, "long", "logs", run.Name + ".log"));
            // checkpoints/last holds the step the run was on when it stopped, not the periodic one before it.
            Assert.Contains($"stopped at iteration {last.Iteration}, saved in", log);
            var logged = File.ReadAllLines(Path.Combine(runDir, "metrics.csv")).Skip(1).Select(l => long.Parse(l.Split(',')[0])).Max();
            Assert.Equal(last.Iteration, logged);
        }
        Assert.Empty(Directory.GetFiles(runDir, "*.tmp", SearchOption.AllDirectories));

        // Running the sweep again continues that run from there.
        var again = SweepTestSupport.Start(dir, "sweep", file);
        Assert.True(SweepTestSupport.WaitUntil(() => SweepManifest.Read(Path.Combine(dir, "long"))!.Runs.Single().Resumes == 1, Limit));
        Signal(again.Id, "INT");
        var output2 = Finish(again);
        Assert.True(again.ExitCode == 130, output2);
        Assert.Empty(Directory.GetFiles(runDir, "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void ASecondSignalStopsAtOnceAndLeavesNoPartialCheckpoint()
    {
        var dir = TestPaths.NewTempDir("sweepstop2");
        var file = LongSweep(dir);
        var (sweep, runDir) = StartAndWait(dir, file);
        Signal(sweep.Id, "TERM");
        Signal(sweep.Id, "TERM");
        var output = Finish(sweep);
        Assert.True(sweep.ExitCode == 130, output);
        Assert.Contains("again", output);
        Assert.Empty(Directory.GetFiles(runDir, "*.tmp", SearchOption.AllDirectories));
        Assert.Equal(RunState.Interrupted, SweepManifest.Read(Path.Combine(dir, "long"))!.Runs.Single().State);
    }
}
