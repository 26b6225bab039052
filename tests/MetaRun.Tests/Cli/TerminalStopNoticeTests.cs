using System.Diagnostics;

namespace MetaRun.Tests.Cli;

/// <summary>
/// What a person sees in a real terminal (tmux, which renders the live progress bar's redraws
/// as a screen would) when they press Ctrl-C during training.
/// </summary>
public sealed class TerminalStopNoticeTests
{
    private static string Tmux(string socket, params string[] args)
    {
        var psi = new ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-L");
        psi.ArgumentList.Add(socket);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output;
    }

    [Fact]
    public void CtrlCLeavesTheStopNoticeAndTheResumeCommandOnScreenUnderTheProgressBar()
    {
        var dir = TestPaths.NewTempDir("tty-stop");
        var socket = "metarun-test-" + Guid.NewGuid().ToString("N")[..8];
        var (_, config) = TestConfigs.Write(TestConfigs.TinySinusoid);
        // The shell stays after metarun exits, as in a terminal: tmux's remain-on-exit would instead
        // scroll the dead pane by a line to write its own notice, pushing the top line out of view.
        var command = $"dotnet {ChildProcess.Dll} train {config} --out {Path.Combine(dir, "run")} --set algorithm.iterations=1000000 --set checkpoint.interval=1000000; echo exit-code: $?; sleep 600";
        Tmux(socket, "new-session", "-d", "-s", "t", "-x", "150", "-y", "20", command);
        try
        {
            var clock = Stopwatch.StartNew();
            // Started: the progress bar is drawing iterations.
            while (!Tmux(socket, "capture-pane", "-p", "-t", "t").Contains("loss") && clock.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(200);
            Thread.Sleep(1000);
            Tmux(socket, "send-keys", "-t", "t", "C-c");
            while (!Tmux(socket, "capture-pane", "-p", "-t", "t").Contains("exit-code:") && clock.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(200);
            var screen = Tmux(socket, "capture-pane", "-p", "-t", "t");
            Assert.Contains("exit-code: 130", screen);
            Assert.StartsWith($"run folder: {Path.Combine(dir, "run")}\n", screen);
            Assert.Contains("interrupted (SIGINT): finishing this iteration and saving checkpoints/last; send it again to stop at once\n", screen);
            Assert.Contains("stopped at iteration", screen);
            Assert.Contains("resume with:", screen);
            // The notice in the bar is cut to fit beside its columns, every time it is drawn.
            var barLine = screen.Split('\n').First(l => l.Contains('━'));
            Assert.True(barLine.TrimEnd().Length < 150, screen);
        }
        finally
        {
            Tmux(socket, "kill-server");
        }
    }
}
