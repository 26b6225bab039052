using System.Diagnostics;
using System.Text.Json.Nodes;
using MetaRun.Tests.Cli;
using MetaRun.Training;

namespace MetaRun.Tests.Training;

/// <summary>
/// One owner per run folder (a real second process, killed with
/// kill -9), nothing written before every check, I/O failures named, graceful stop on real
/// SIGINT and SIGTERM sent to a real child process.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class RunDirectoryTests : IDisposable
{
    // Children train for a million iterations: whatever a failing assertion leaves running is killed here.
    // By PID: the tests dispose their Process objects first.
    private readonly List<int> children = [];

    public void Dispose()
    {
        foreach (var pid in children)
            try
            {
                using var c = Process.GetProcessById(pid);
                if (c.ProcessName == "dotnet" && !c.HasExited) c.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException) { }
        GC.SuppressFinalize(this);
    }

    private static (string Dir, string Config) Setup(string extra = "")
    {
        var dir = TestPaths.NewTempDir("runfolder");
        var config = Path.Combine(dir, "c.yaml");
        File.WriteAllText(config, CheckpointTests.Sinusoid + extra);
        return (dir, config);
    }

    /// <summary>
    /// A child `metarun train` of many iterations, returned once it prints its run folder (after
    /// its signal handlers are in place) and, with <paramref name="waitForCheckpoint"/>, has
    /// written checkpoints/last.
    /// </summary>
    private Process StartLongTrain(string config, string run, bool waitForCheckpoint, params string[] sets)
    {
        string[] args = ["train", config, "--out", run, "--set", "algorithm.iterations=1000000", "--set", "eval.interval=0", .. sets.SelectMany(s => new[] { "--set", s })];
        var p = ChildProcess.Start(args);
        children.Add(p.Id);
        var line = p.StandardOutput.ReadLineAsync();
        if (!line.Wait(TimeSpan.FromSeconds(90)) || line.Result == null || !line.Result.StartsWith("run folder:", StringComparison.Ordinal))
        {
            if (!p.HasExited) p.Kill();
            throw new InvalidOperationException($"the child did not start training: {line.Status} {(line.IsCompleted ? line.Result : "")} {p.StandardError.ReadToEnd()}");
        }
        var clock = Stopwatch.StartNew();
        while (waitForCheckpoint && !File.Exists(Path.Combine(run, "checkpoints", "last.safetensors")))
        {
            if (p.HasExited || clock.Elapsed > TimeSpan.FromSeconds(90)) throw new InvalidOperationException("no checkpoint from the child");
            Thread.Sleep(50);
        }
        Thread.Sleep(500);
        return p;
    }

    private static void Signal(Process p, string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", p.Id.ToString()])!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    private static (int Code, string Err) WaitExit(Process p, TimeSpan limit)
    {
        var err = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(limit))
        {
            p.Kill();
            throw new TimeoutException("the child did not stop");
        }
        p.WaitForExit();
        return (p.ExitCode, err.Result);
    }

    [Fact]
    public void ASecondOwnerIsRefusedNamingFolderAndPidAndKill9ReleasesTheFolder()
    {
        var (dir, config) = Setup();
        var run = Path.Combine(dir, "run");
        using var child = StartLongTrain(config, run, true, "checkpoint.interval=20");
        var (code, _, err) = CliRunner.Run("train", config, "--out", run);
        Assert.True(code == 2, err);
        Assert.Contains(run, err);
        Assert.True(err.Contains($"PID {child.Id}"), err);
        (code, _, err) = CliRunner.Run("train", config, "--resume", run);
        Assert.True(code == 2, err);
        Assert.True(err.Contains($"PID {child.Id}"), err);

        child.Kill(); // SIGKILL: no handler runs; the kernel drops the lock
        child.WaitForExit();
        (code, _, err) = CliRunner.Run("train", config, "--resume", run, "--set", "algorithm.iterations=1");
        Assert.True(code == 0, err);
    }

    [Fact]
    public void AnOwnerInThisProcessBlocksASecondOwnerUntilReleased()
    {
        var (dir, config) = Setup();
        var run = Path.Combine(dir, "run");
        var c = MetaRun.Config.ConfigLoader.Load(config);
        using (RunDirectory.Claim(c, run))
        {
            var (code, _, err) = CliRunner.Run("train", config, "--out", run);
            Assert.Equal(2, code);
            Assert.Contains($"PID {Environment.ProcessId}", err);
        }
        Assert.Equal(0, CliRunner.Run("train", config, "--out", run).Code);
    }

    [Theory]
    [InlineData("TERM", 143)]
    [InlineData("INT", 130)]
    public void TheFirstSignalFinishesTheStepSavesLastAndPrintsTheResumeCommand(string signal, int expected)
    {
        var (dir, config) = Setup();
        var run = Path.Combine(dir, "run");
        using var child = StartLongTrain(config, run, false, "checkpoint.interval=1000000");
        Assert.False(File.Exists(Path.Combine(run, "checkpoints", "last.safetensors")));
        Signal(child, signal);
        var (code, err) = WaitExit(child, TimeSpan.FromSeconds(60));
        Assert.True(code == expected, err);
        // Pasted as printed, it resumes: the run keeps its own config.
        Assert.Contains($"resume with: {ShellCommand.Of("train", "--resume", run)}", err);
        Assert.DoesNotContain("   at ", err);

        // last holds the final iteration the metrics saw, and the resume continues from it.
        var rows = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        var lastRow = long.Parse(rows[^1].Split(',')[0]);
        using (var last = Checkpoint.Load(Path.Combine(run, "checkpoints", "last.safetensors")))
            Assert.Equal(lastRow, last.Iteration);
        Assert.Empty(Directory.GetFiles(Path.Combine(run, "checkpoints"), "*.tmp"));
        var (resumed, _, rerr) = CliRunner.Run("train", config, "--resume", run, "--set", $"algorithm.iterations={lastRow + 2}", "--set", "eval.interval=0");
        Assert.True(resumed == 0, rerr);
        Assert.Equal(lastRow + 2, long.Parse(File.ReadAllLines(Path.Combine(run, "metrics.csv"))[^1].Split(',')[0]));
    }

    [Fact]
    public async Task ASecondSignalExitsAtOnce()
    {
        var (dir, config) = Setup();
        var run = Path.Combine(dir, "run");
        // Slow iterations (hundreds of inner steps), so the second signal lands inside the step the first one lets finish.
        using var child = StartLongTrain(config, run, false, "checkpoint.interval=1000000", "algorithm.inner_steps=1000", "algorithm.inner_lr=0.001", "algorithm.meta_batch_size=64");
        Signal(child, "TERM");
        // Sent only once the first is handled: two pending signals of one kind merge into one.
        var first = await child.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains("finishing this iteration", first);
        Signal(child, "TERM");
        var (code, err) = WaitExit(child, TimeSpan.FromSeconds(60));
        Assert.True(code == 143, err);
        Assert.Contains("again: stopping now", err);
    }

    [Fact]
    public void ARefusedResumeWritesNothing()
    {
        var (run, config) = CheckpointTests.TrainedRun();
        var before = Directory.GetFiles(run, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);
        // Another training config: refused before anything is opened, naming the key and both values.
        var other = Path.Combine(Path.GetDirectoryName(config)!, "other.yaml");
        File.WriteAllText(other, CheckpointTests.Sinusoid.Replace("name: maml", "name: fomaml"));
        var (code, _, err) = CliRunner.Run("train", other, "--resume", run);
        Assert.True(code == 2, err);
        Assert.Contains("algorithm.name is 'maml' in the run, 'fomaml' in", err);
        foreach (var (f, bytes) in before)
            Assert.True(bytes.SequenceEqual(File.ReadAllBytes(f)), $"{f} was changed");
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(run, "*", SearchOption.AllDirectories).Order());
    }

    [Fact]
    public void ANewRunRefusedByTheDataCheckLeavesNoFolder()
    {
        var (dir, _) = Setup();
        var config = Path.Combine(dir, "o.yaml");
        File.WriteAllText(config, "name: o\ndata:\n  dataset: omniglot\n");
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("--data-root", Path.Combine(dir, "absent"), "train", config, "--out", run);
        Assert.True(code == 3, err);
        Assert.False(Directory.Exists(run), string.Join(", ", Directory.Exists(run) ? Directory.GetFileSystemEntries(run) : []));
    }

    [Fact]
    public void OutNamingAFileExitsTwo()
    {
        var (dir, config) = Setup();
        var file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "x");
        var (code, _, err) = CliRunner.Run("train", config, "--out", file);
        Assert.True(code == 2, err);
        Assert.Contains($"{file}: is a file", err);
        Assert.Equal("x", File.ReadAllText(file));
    }

    [Theory]
    [InlineData("/dev/full", "No space left on device")]
    [InlineData("/nonexistent-folder/eval.json", "/nonexistent-folder/eval.json")]
    public void EvalPrintsTheResultThenNamesWhereItCouldNotWrite(string dest, string says)
    {
        var (run, _) = CheckpointTests.TrainedRun();
        var (code, stdout, err) = CliRunner.Run("eval", "--checkpoint", run, "--episodes", "4", "--out", dest);
        Assert.True(code == 5, err);
        Assert.Contains("MSE ", stdout);
        Assert.Contains(dest + ": cannot write the result", err);
        Assert.Contains(says, err);
        Assert.Contains("--out", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void ACheckpointWriteFailureExitsFiveAndLeavesNoPartialFile()
    {
        var (run, _) = CheckpointTests.TrainedRun();
        using var last = Checkpoint.Load(Path.Combine(run, "checkpoints", "last.safetensors"));
        // The target's folder is a file: the .tmp cannot be created or moved; nothing may be left behind.
        var blocked = Path.Combine(run, "blocked");
        File.WriteAllText(blocked, "");
        var e = Assert.Throws<MetaRunException>(() => last.Save(Path.Combine(blocked, "last.safetensors"), 2));
        Assert.Equal(5, e.ExitCode);
        Assert.Contains("cannot write the checkpoint", e.Message);
        var target = Path.Combine(run, "checkpoints", "copy.safetensors");
        Directory.CreateDirectory(target + ".tmp"); // a .tmp that cannot be opened as a file
        e = Assert.Throws<MetaRunException>(() => last.Save(target, 2));
        Assert.Equal(5, e.ExitCode);
        Assert.False(File.Exists(target));
    }
}
