using System.Diagnostics;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Evaluation;

/// <summary>Ctrl-C or SIGTERM during eval says what was stopped and exits 130 or 143, not silently.</summary>
public sealed class InterruptionTests
{
    [Theory]
    [InlineData("INT", 130, "interrupted (SIGINT) during eval")]
    [InlineData("TERM", 143, "terminated (SIGTERM) during eval")]
    public async Task ASignalDuringEvalIsSaid(string signal, int code, string said)
    {
        var dir = TestPaths.NewTempDir("evalsignal");
        var config = Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml");
        var trained = ChildProcess.Run(["train", config, "--out", Path.Combine(dir, "run"), "--set", "algorithm.iterations=2", "--set", "eval.interval=0", "--set", "checkpoint.interval=2"]);
        Assert.True(trained.Code == 0, trained.Err);
        using var eval = ChildProcess.Start(["eval", "--checkpoint", Path.Combine(dir, "run"), "--episodes", "1000000", "--out", Path.Combine(dir, "e.json")]);
        var stdout = eval.StandardOutput.ReadToEndAsync();
        var stderr = eval.StandardError.ReadToEndAsync();
        // Well into the million episodes: waited for in CPU time, which a loaded machine does not stretch as it stretches the wall clock.
        ChildProcess.WaitForCpu(eval, 4);
        using (var kill = Process.Start("kill", [$"-{signal}", eval.Id.ToString()])!) kill.WaitForExit();
        if (!eval.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            eval.Kill();
            Assert.Fail("eval ignored the signal");
        }
        var err = await stderr;
        await stdout;
        Assert.True(eval.ExitCode == code, err);
        Assert.Contains(said, err);
        Assert.False(File.Exists(Path.Combine(dir, "e.json")));
    }
}
