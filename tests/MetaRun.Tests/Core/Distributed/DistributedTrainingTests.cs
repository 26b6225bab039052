using System.Diagnostics;
using System.Globalization;
using LibTorch;
using MetaRun.Training;

namespace MetaRun.Tests.Distributed;

/// <summary>
/// Data-parallel training through the real command line: metarun processes (started by the
/// test, or by `--nproc`) meeting on loopback, one thread each, on the sinusoid config.
/// </summary>
public sealed class DistributedTrainingTests
{
    private static readonly string Config = Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml");

    // A short run: validation and checkpoints every 10 iterations, one thread per process.
    private static string[] Settings(int iterations, int metaBatch = 8) =>
    [
        "--set", $"algorithm.iterations={iterations}", "--set", $"algorithm.meta_batch_size={metaBatch}", "--set", "eval.interval=10",
        "--set", "eval.episodes=20", "--set", "checkpoint.interval=10", "--set", "threads=1", "--set", "distributed.timeout=20",
    ];

    [Fact]
    public void TwoProcessesMatchOneProcessWithTwoWorkersTwoRunsAreBitIdenticalAndEvalSplitsAlike()
    {
        var single = TestPaths.NewTempDir("dp-single");
        var (code, output) = Metarun.Run(["train", Config, .. Settings(30), "--set", "workers=2", "--out", single]);
        Assert.True(code == 0, output);

        var a = TestPaths.NewTempDir("dp-a");
        var b = TestPaths.NewTempDir("dp-b");
        foreach (var dir in new[] { a, b })
        {
            (code, output) = Metarun.Run(["train", Config, .. Settings(30), "--set", "workers=1", "--out", dir, "--nproc", "2"]);
            Assert.True(code == 0, output);
            Assert.True(File.Exists(Path.Combine(dir, "train.rank1.log")), "rank 1 keeps its own log");
            Assert.False(File.Exists(Path.Combine(dir, "checkpoints", "last.safetensors.tmp")));
        }

        // Summation order differs (ranks sum their halves first): equal to 1e-6 relative.
        var (ws, wa) = (Weights(single), Weights(a));
        Assert.Equal(ws.Keys, wa.Keys);
        foreach (var k in ws.Keys)
            Assert.True(RelativeDifference(ws[k], wa[k]) < 1e-6, $"{k}: relative difference {RelativeDifference(ws[k], wa[k])}");
        // Validation is split over the ranks and gathered: same episodes, same scores.
        Assert.Equal(ValColumn(single), ValColumn(a), (x, y) => Math.Abs(x - y) <= 1e-6 * Math.Abs(x));

        // Two 2-process runs: bit for bit, weights and metrics.
        Assert.Equal(Bytes(a), Bytes(b));
        Assert.Equal(MetricsWithoutSeconds(a), MetricsWithoutSeconds(b));

        // eval split over two ranks scores the same episodes as eval in one process.
        var (one, two) = (Path.Combine(a, "eval1.json"), Path.Combine(a, "eval2.json"));
        (code, output) = Metarun.Run(["eval", "--checkpoint", a, "--episodes", "30", "--out", one]);
        Assert.True(code == 0, output);
        (code, output) = Metarun.Run(["eval", "--checkpoint", a, "--episodes", "30", "--out", two, "--nproc", "2"]);
        Assert.True(code == 0, output);
        Assert.Single(output.Split('\n'), l => l.StartsWith("written to", StringComparison.Ordinal));
        string Result(string f) => string.Join("\n", File.ReadAllLines(f).Where(l => !l.Contains("\"seconds\"")));
        Assert.Equal(Result(one), Result(two));
    }

    [Fact]
    public void AKilledRankStopsTheOtherNamingItAndResumeCompletesTheRun()
    {
        const int iterations = 60;
        var straight = TestPaths.NewTempDir("dp-straight");
        var (code, output) = Metarun.Run(["train", Config, .. Settings(iterations, 4), "--out", straight, "--nproc", "2"]);
        Assert.True(code == 0, output);

        var dir = TestPaths.NewTempDir("dp-killed");
        var port = LibTorch.DistributedTests.FreePort();
        using var r0 = Metarun.Start(["train", Config, .. Settings(iterations, 4), "--out", dir], TorchrunEnv(0, port));
        using var r1 = Metarun.Start(["train", Config, .. Settings(iterations, 4), "--out", dir], TorchrunEnv(1, port));
        var last = Path.Combine(dir, "checkpoints", "last.safetensors");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(last) && clock.Elapsed < TimeSpan.FromSeconds(60) && !r0.HasExited) Thread.Sleep(20);
        Assert.True(File.Exists(last), "rank 0 wrote no checkpoint: " + r0.Output);
        clock.Restart();
        r1.Kill();
        Assert.True(r0.WaitForExit(TimeSpan.FromSeconds(40)), "rank 0 did not exit after rank 1 was killed");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"rank 0 took {clock.Elapsed} (timeout 20 s)");
        Assert.Equal(1, r0.ExitCode);
        Assert.Contains("rank 1 stopped responding (it died or hung)", r0.Output);
        Assert.Contains($"continue with --resume {dir}", r0.Output);
        Assert.Single(r0.Output.Split('\n'), l => l.StartsWith("metarun: ", StringComparison.Ordinal));

        // The last checkpoint is whole, and resuming with the same world size ends where the
        // uninterrupted run ended, bit for bit.
        using (var c = Checkpoint.Load(last)) Assert.True(c.Iteration is > 0 and < iterations, $"checkpoint at {c.Iteration}");
        var other = TestPaths.NewTempDir("dp-killed-1proc");
        CopyRun(dir, other);
        (code, output) = Metarun.Run(["train", Config, .. Settings(iterations, 4), "--resume", dir, "--nproc", "2"]);
        Assert.True(code == 0, output);
        Assert.Equal(Bytes(straight), Bytes(dir));

        // Another world size (one process) continues from the same state; only the summation
        // order of the gradients differs, in the last bits.
        (code, output) = Metarun.Run(["train", Config, .. Settings(iterations, 4), "--resume", other]);
        Assert.True(code == 0, output);
        var (wa, wb) = (Weights(straight), Weights(other));
        foreach (var k in wa.Keys)
            Assert.True(RelativeDifference(wa[k], wb[k]) < 1e-4, $"{k}: relative difference {RelativeDifference(wa[k], wb[k])}");
    }

    [Fact]
    public void TheSupervisorNamesAKilledRankAndEveryRankExitsNonZero()
    {
        var dir = TestPaths.NewTempDir("dp-supervised");
        using var supervisor = Metarun.Start(["train", Config, .. Settings(100000, 4), "--out", dir, "--nproc", "2"]);
        var last = Path.Combine(dir, "checkpoints", "last.safetensors");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(last) && clock.Elapsed < TimeSpan.FromSeconds(60) && !supervisor.HasExited) Thread.Sleep(20);
        Assert.True(File.Exists(last), supervisor.Output);
        var ranks = ChildRanks(supervisor.Id);
        Assert.Equal([0, 1], ranks.Keys.Order());
        Process.GetProcessById(ranks[1]).Kill();
        Assert.True(supervisor.WaitForExit(TimeSpan.FromSeconds(60)), supervisor.Output);
        Assert.Equal(1, supervisor.ExitCode);
        Assert.Contains("metarun: rank 1 of 2 was killed by signal 9", supervisor.Output);
        Assert.Contains("rank 1 stopped responding (it died or hung)", supervisor.Output); // rank 0's own line
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(ranks[0])); // rank 0 has exited too
    }

    /// <summary>The supervisor's children by their RANK variable (Linux /proc).</summary>
    private static Dictionary<int, int> ChildRanks(int parent)
    {
        var children = File.ReadAllText($"/proc/{parent}/task/{parent}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse);
        return children.ToDictionary(
            pid => int.Parse(File.ReadAllText($"/proc/{pid}/environ").Split('\0').First(v => v.StartsWith("RANK=", StringComparison.Ordinal))[5..], CultureInfo.InvariantCulture),
            pid => pid);
    }

    [Fact]
    public void RanksStartedWithSlurmsVariablesTrainTogether()
    {
        // What srun gives each task: no torchrun variables; the master is the nodelist's first host.
        var dir = TestPaths.NewTempDir("dp-slurm");
        var port = LibTorch.DistributedTests.FreePort().ToString(CultureInfo.InvariantCulture);
        Dictionary<string, string> Slurm(int rank) => new()
        {
            ["SLURM_PROCID"] = rank.ToString(CultureInfo.InvariantCulture), ["SLURM_LOCALID"] = rank.ToString(CultureInfo.InvariantCulture),
            ["SLURM_STEP_NUM_TASKS"] = "2", ["SLURM_TASKS_PER_NODE"] = "2", ["SLURM_JOB_NODELIST"] = "localhost", ["MASTER_PORT"] = port,
        };
        using var r0 = Metarun.Start(["train", Config, .. Settings(20), "--out", dir], Slurm(0));
        using var r1 = Metarun.Start(["train", Config, .. Settings(20), "--out", dir], Slurm(1));
        foreach (var r in new[] { r0, r1 })
        {
            Assert.True(r.WaitForExit(TimeSpan.FromSeconds(90)), r.Output);
            Assert.True(r.ExitCode == 0, r.Output);
        }
        Assert.Contains("Rank 1 of 2 (Gloo, rendezvous localhost:", File.ReadAllText(Path.Combine(dir, "train.rank1.log")));
        using var c = Checkpoint.Load(Path.Combine(dir, "checkpoints", "last.safetensors"));
        Assert.Equal(20, c.Iteration);
    }

    [Fact]
    public void ASignalToOneRankStopsEveryRankAfterTheSameStepWithLastSaved()
    {
        // Slurm's preemption signal reaches the ranks at different moments; a signal to rank 1
        // alone must still stop rank 0 (which writes the checkpoint) after the same step.
        var dir = TestPaths.NewTempDir("dp-stop");
        var port = LibTorch.DistributedTests.FreePort();
        string[] args = ["train", Config, .. Settings(1_000_000), "--set", "checkpoint.interval=1000000", "--set", "eval.interval=0", "--out", dir];
        using var r0 = Metarun.Start(args, TorchrunEnv(0, port));
        using var r1 = Metarun.Start(args, TorchrunEnv(1, port));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(dir, "metrics.csv")) || File.ReadAllLines(Path.Combine(dir, "metrics.csv")).Length < 10)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90) && !r0.HasExited && !r1.HasExited, r0.Output + r1.Output);
            Thread.Sleep(100);
        }
        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", r1.Id.ToString(CultureInfo.InvariantCulture)])!) kill.WaitForExit();
        foreach (var r in new[] { r0, r1 })
        {
            Assert.True(r.WaitForExit(TimeSpan.FromSeconds(60)), r.Output);
            Assert.True(r.ExitCode == 143, $"exit {r.ExitCode}: {r.Output}");
        }
        Assert.Contains($"resume with: {ShellCommand.Of("train", "--resume", dir)}", r0.Output);
        using var c = Checkpoint.Load(Path.Combine(dir, "checkpoints", "last.safetensors"));
        Assert.Equal(File.ReadAllLines(Path.Combine(dir, "metrics.csv")).Length - 1, c.Iteration);
    }

    [Fact]
    public void RanksWithDifferentConfigsRefuseAtStartWithExitCode2()
    {
        var dir = TestPaths.NewTempDir("dp-mismatch");
        var port = LibTorch.DistributedTests.FreePort();
        using var r0 = Metarun.Start(["train", Config, .. Settings(20), "--out", dir], TorchrunEnv(0, port));
        using var r1 = Metarun.Start(["train", Config, .. Settings(20), "--set", "seed=2", "--out", dir], TorchrunEnv(1, port));
        foreach (var r in new[] { r0, r1 })
        {
            Assert.True(r.WaitForExit(TimeSpan.FromSeconds(60)), r.Output);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("the ranks disagree on the config: rank 0 has", r.Output);
        }
        Assert.False(File.Exists(Path.Combine(dir, "checkpoints", "last.safetensors")));
    }

    [Fact]
    public void AnUnreachableMasterIsARendezvousErrorWithExitCode2()
    {
        var port = LibTorch.DistributedTests.FreePort();
        using var r1 = Metarun.Start(["train", Config, .. Settings(20), "--set", "distributed.timeout=2", "--out", TestPaths.NewTempDir("dp-alone")], TorchrunEnv(1, port));
        Assert.True(r1.WaitForExit(TimeSpan.FromSeconds(30)), r1.Output);
        Assert.Equal(2, r1.ExitCode);
        Assert.Contains($"metarun: rendezvous of rank 1 of 2 at 127.0.0.1:{port} failed: cannot reach the rendezvous store", r1.Output);
    }

    [Fact]
    public void BenchWithTwoProcessesReportsTheAllReducesShareOnce()
    {
        var json = Path.Combine(TestPaths.NewTempDir("dp-bench"), "bench.json");
        var (code, output) = Metarun.Run(["bench", Config, "--set", "threads=1", "--iterations", "5", "--warmup", "1", "--out", json, "--nproc", "2"]);
        Assert.True(code == 0, output);
        Assert.Contains("2 processes (Gloo) × 1 workers × 1 threads", output);
        Assert.Single(output.Split('\n'), l => l.StartsWith("  communication: the all-reduce takes", StringComparison.Ordinal));
        var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(json)).RootElement;
        Assert.Equal(2, doc.GetProperty("processes").GetInt32());
        Assert.Equal(25, doc.GetProperty("tasks_per_iteration").GetInt32()); // the whole meta-batch, not a rank's share
        // The sinusoid MLP 1-40-40-1: 1761 float32 parameters.
        Assert.Equal(1761 * 4, doc.GetProperty("gradient_bytes").GetInt64());
        Assert.InRange(doc.GetProperty("allreduce_share").GetDouble(), 1e-6, 1);
    }

    private static Dictionary<string, string> TorchrunEnv(int rank, int port) => new()
    {
        ["RANK"] = rank.ToString(CultureInfo.InvariantCulture),
        ["LOCAL_RANK"] = rank.ToString(CultureInfo.InvariantCulture),
        ["WORLD_SIZE"] = "2",
        ["LOCAL_WORLD_SIZE"] = "2",
        ["MASTER_ADDR"] = "127.0.0.1",
        ["MASTER_PORT"] = port.ToString(CultureInfo.InvariantCulture),
    };

    private static Dictionary<string, float[]> Weights(string run)
    {
        using var c = Checkpoint.Load(Path.Combine(run, "checkpoints", "last.safetensors"));
        return c.Parameters.ToDictionary(p => p.Key, p => p.Value.ToArray<float>());
    }

    private static byte[] Bytes(string run)
    {
        using var c = Checkpoint.Load(Path.Combine(run, "checkpoints", "last.safetensors"));
        return c.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToBytes()).ToArray();
    }

    private static double RelativeDifference(float[] a, float[] b)
    {
        double diff = 0, norm = 0;
        for (var i = 0; i < a.Length; i++)
        {
            diff += (a[i] - (double)b[i]) * (a[i] - (double)b[i]);
            norm += (double)a[i] * a[i];
        }
        return Math.Sqrt(diff / Math.Max(norm, 1e-30));
    }

    private static double[] ValColumn(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Skip(1).Select(l => l.Split(',')[3]).Where(v => v != "")
            .Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();

    private static string[] MetricsWithoutSeconds(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Select(l => string.Join(',', l.Split(',')[..^1])).ToArray();

    private static void CopyRun(string from, string to)
    {
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var dest = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(f, dest, overwrite: true);
        }
    }
}

/// <summary>The metarun CLI as a real child process (a rank must own its process, sockets and death).</summary>
internal sealed class Metarun : IDisposable
{
    private readonly Process process;
    private readonly List<string> lines = new();

    private Metarun(Process p)
    {
        process = p;
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (lines) lines.Add(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (lines) lines.Add(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
    }

    public string Output { get { lock (lines) return string.Join("\n", lines); } }
    public bool HasExited => process.HasExited;
    public int Id => process.Id;
    public int ExitCode => process.ExitCode;

    /// <summary>metarun.dll as built beside the tests (the test project references the CLI).</summary>
    public static Metarun Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "metarun.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var k in new[] { "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS",
                     "SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_TASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE", "TORCHELASTIC_USE_AGENT_STORE" })
            psi.Environment.Remove(k);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return new Metarun(Process.Start(psi)!);
    }

    /// <summary>Runs to the end (at most two minutes) and returns the exit code and all output.</summary>
    public static (int Code, string Output) Run(IEnumerable<string> args)
    {
        using var m = Start(args);
        if (!m.WaitForExit(TimeSpan.FromMinutes(2))) throw new TimeoutException("metarun did not finish: " + m.Output);
        return (m.ExitCode, m.Output);
    }

    public bool WaitForExit(TimeSpan within)
    {
        if (!process.WaitForExit(within)) return false;
        process.WaitForExit(); // drains the redirected output
        return true;
    }

    public void Kill() => process.Kill();

    public void Dispose()
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.Dispose();
    }
}
