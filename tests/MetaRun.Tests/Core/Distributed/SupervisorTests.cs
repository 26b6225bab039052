using System.Diagnostics;
using System.Globalization;

namespace MetaRun.Tests.Distributed;

/// <summary>
/// The `--nproc` supervisor and its ranks: the ranks die with it however it dies (kill -9
/// included), releasing the run folder; more ranks than cores are refused unless asked for.
/// </summary>
public sealed class SupervisorTests
{
    private static readonly string Config = Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml");

    private static string[] Settings =>
    [
        "--set", "algorithm.iterations=1000000", "--set", "algorithm.meta_batch_size=4", "--set", "eval.interval=0",
        "--set", "checkpoint.interval=10", "--set", "threads=1", "--set", "workers=1", "--set", "distributed.timeout=20",
    ];

    private static int[] Children(int parent) =>
        File.ReadAllText($"/proc/{parent}/task/{parent}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();

    private static bool Alive(int pid)
    {
        // A zombie is dead: it only waits to be reaped.
        try { return !File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].StartsWith('Z'); }
        catch (IOException) { return false; }
    }

    /// <summary>A `--nproc 2` training whose first checkpoint is written: the supervisor, checkpoints/last and the two ranks' process ids.</summary>
    private static (Metarun Supervisor, string Last, int[] Ranks) StartTwoRanksUntilTheyHaveSaved(string dir)
    {
        var supervisor = Metarun.Start(["train", Config, .. Settings, "--out", dir, "--nproc", "2"]);
        var last = Path.Combine(dir, "checkpoints", "last.safetensors");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(last) && clock.Elapsed < TimeSpan.FromSeconds(90) && !supervisor.HasExited) Thread.Sleep(50);
        Assert.True(File.Exists(last), supervisor.Output);
        var ranks = Children(supervisor.Id);
        Assert.Equal(2, ranks.Length);
        return (supervisor, last, ranks);
    }

    [Fact]
    public void KillingTheSupervisorWithSigkillTakesItsRanksWithIt()
    {
        var dir = TestPaths.NewTempDir("dp-orphans");
        var (started, _, ranks) = StartTwoRanksUntilTheyHaveSaved(dir);
        using var supervisor = started;

        Process.GetProcessById(supervisor.Id).Kill(); // SIGKILL, the supervisor alone
        Assert.True(supervisor.WaitForExit(TimeSpan.FromSeconds(30)));
        var clock = Stopwatch.StartNew();
        while (ranks.Any(Alive) && clock.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(100);
        var left = ranks.Where(Alive).ToArray();
        foreach (var pid in left) try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
        Assert.True(left.Length == 0, $"ranks {string.Join(", ", left)} outlived their supervisor");

        // The run folder is free again: it resumes (briefly) without "in use by another process".
        var (code, output) = Metarun.Run(["train", Config, .. Settings, "--set", "algorithm.iterations=" + 12, "--resume", dir]);
        Assert.DoesNotContain("in use by another metarun process", output);
    }

    [Fact]
    public void CtrlCStopsEveryRankAtASavedIterationAndSaysHowToResume()
    {
        var dir = TestPaths.NewTempDir("dp-stop");
        var (started, last, ranks) = StartTwoRanksUntilTheyHaveSaved(dir);
        using var supervisor = started;

        // A terminal's Ctrl-C signals the whole process group: the supervisor and both ranks.
        using (var kill = Process.Start("kill", ["-INT", .. new[] { supervisor.Id }.Concat(ranks).Select(p => p.ToString(CultureInfo.InvariantCulture))])!) kill.WaitForExit();
        Assert.True(supervisor.WaitForExit(TimeSpan.FromSeconds(60)), supervisor.Output);
        Assert.True(supervisor.ExitCode == 130, supervisor.Output);
        Assert.Contains("interrupted (SIGINT): the 2 ranks finish this iteration and save checkpoints/last", supervisor.Output);
        Assert.DoesNotContain("(SIGINT) again", supervisor.Output);
        var stopped = System.Text.RegularExpressions.Regex.Match(supervisor.Output, @"stopped at iteration (\d+), saved in (.+); resume with: (.+)");
        Assert.True(stopped.Success, supervisor.Output);
        Assert.EndsWith($"--resume {dir} --nproc 2", stopped.Groups[3].Value.Trim());
        // What it says it saved is what checkpoints/last holds: the iteration it stopped at, not the last interval's.
        using (var saved = global::LibTorch.Safetensors.Load(last))
            Assert.Equal(stopped.Groups[1].Value, saved.Metadata["iteration"]);
        Assert.DoesNotContain(ranks, Alive);
    }

    [Fact]
    public void MoreRanksThanCoresAreRefusedUnlessOversubscribed()
    {
        var dir = TestPaths.NewTempDir("dp-cap");
        var (code, output) = Metarun.Run(["train", Config, .. Settings, "--out", dir, "--nproc", "1000"]);
        Assert.True(code == 2, output);
        Assert.Contains("--nproc 1000", output);
        Assert.Contains($"{Environment.ProcessorCount} CPU core", output);
        Assert.Contains("--oversubscribe", output);
        Assert.False(File.Exists(Path.Combine(dir, "config.yaml")));

        (code, output) = Metarun.Run(["eval", "--checkpoint", dir, "--nproc", "1000"]);
        Assert.True(code == 2, output);
        Assert.Contains("--oversubscribe", output);
    }
}
