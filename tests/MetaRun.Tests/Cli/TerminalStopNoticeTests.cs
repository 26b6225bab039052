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
        var command = $"exec dotnet {ChildProcess.Dll} train {config} --out {Path.Combine(dir, "run")} --set algorithm.iterations=1000000 --set checkpoint.interval=1000000";
        Tmux(socket, "new-session", "-d", "-s", "t", "-x", "150", "-y", "20", command);
        try
        {
            Tmux(socket, "set-option", "-t", "t", "remain-on-exit", "on");
            var clock = Stopwatch.StartNew();
            // Started: the progress bar is drawing iterations.
            while (!Tmux(socket, "capture-pane", "-p", "-t", "t").Contains("loss") && clock.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(200);
            Thread.Sleep(1000);
            Tmux(socket, "send-keys", "-t", "t", "C-c");
            while (Tmux(socket, "display-message", "-p", "-t", "t", "#{pane_dead}").Trim() != "1" && clock.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(200);
            var screen = Tmux(socket, "capture-pane", "-p", "-t", "t");
            Assert.True(Tmux(socket, "display-message", "-p", "-t", "t", "#{pane_dead}").Trim() == "1", screen);
            Assert.Contains("interrupted (SIGINT): finishing this iteration and saving checkpoints/last; send it again to stop at once\n", screen);
            Assert.Contains("stopped at iteration", screen);
            Assert.Contains("resume with:", screen);
            // The notice in the bar is cut to fit beside its columns, every time it is drawn.
            var barLine = screen.Split('\n').First(l => l.Contains('━'));
            Assert.True(barLine.TrimEnd().Length < 150, screen);
            // Not asserted: that the "run folder:" line above the bar survives. In about one stop
            // in three the live display's last redraw starts one line too high and blanks it
            // (not understood yet; a known defect).
        }
        finally
        {
            Tmux(socket, "kill-server");
        }
    }
}
