using System.Diagnostics;
using MetaRun.Tests.Cli;
using MetaRun.Tests.Evaluation;
using MetaRun.Training;

namespace MetaRun.Tests.Training;

/// <summary>
/// A second SIGTERM or Ctrl-C stops a real training process at once, with the documented exit
/// code, even while its task workers are inside libtorch's convolutions (exit handlers running
/// under them ended such a process with SIGSEGV), and the checkpoint saved before is intact.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class GracefulStopTests
{
    [Theory]
    [InlineData("TERM", 143)]
    [InlineData("INT", 130)]
    public async Task A_second_signal_amid_convolutions_exits_with_the_signals_code_and_leaves_last_intact(string signal, int expected)
    {
        using var images = new SmallImageRun("second-signal");
        var config = Path.Combine(images.Dir, "maml.yaml");
        // Two workers on a convolutional network with many inner steps: slow iterations, so both
        // signals land while the workers are busy in libtorch (with 20 inner steps and 8 tasks the
        // batched mode finished the step the first signal let complete, and exited, before the
        // second could be sent, once in three full-suite runs).
        File.WriteAllText(config, $$"""
            name: busy
            seed: 1
            threads: 1
            workers: 2
            data:
              dataset: folder
              root: {{images.Root}}
              image_size: 16
              train: {ways: 2, shots: 1, queries: 2}
              test: {ways: 2, shots: 1, queries: 2}
            model: {filters: 32}
            algorithm: {name: maml, inner_steps: 40, meta_batch_size: 16, iterations: 1000000}
            eval: {interval: 0}
            checkpoint: {interval: 1}
            """);
        var run = Path.Combine(images.Dir, "run");
        var last = Path.Combine(run, "checkpoints", "last.safetensors");
        // The crash was a race (about one stop in six): three stops, each resuming where the last left off.
        for (var round = 0; round < 3; round++)
        {
            var written = File.Exists(last) ? File.GetLastWriteTimeUtc(last) : DateTime.MinValue;
            using var child = ChildProcess.Start(round == 0 ? ["train", config, "--out", run] : ["train", "--resume", run]);
            var stderr = new List<string>();
            var stdout = child.StandardOutput.ReadToEndAsync();
            try
            {
                var clock = Stopwatch.StartNew();
                while ((!File.Exists(last) || File.GetLastWriteTimeUtc(last) == written) && !child.HasExited && clock.Elapsed < TimeSpan.FromSeconds(90)) Thread.Sleep(50);
                if (!File.Exists(last) || File.GetLastWriteTimeUtc(last) == written)
                {
                    if (!child.HasExited) child.Kill();
                    Assert.Fail($"round {round}: no new checkpoint before the signals: " + await child.StandardError.ReadToEndAsync());
                }
                long saved;
                using (var before = Checkpoint.Load(last)) saved = before.Iteration;

                Signal(child, signal);
                // The second only once the first is handled: two pending signals of one kind merge into one.
                string? line;
                while ((line = await child.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60))) != null)
                {
                    stderr.Add(line);
                    if (line.Contains("send it again to stop at once")) break;
                }
                Signal(child, signal);
                stderr.Add(await child.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30)));
                Assert.True(child.WaitForExit(TimeSpan.FromSeconds(30)), "the second signal did not stop it");
                var err = string.Join("\n", stderr);
                Assert.True(child.ExitCode == expected, $"round {round}: exit {child.ExitCode} (a crash is 128 + its signal, e.g. 139): {err}");
                Assert.Contains("again: stopping now", err);
                Assert.DoesNotContain("   at ", err);

                // last is whole: the one from before, or the one the first signal let the step finish and save.
                using var after = Checkpoint.Load(last);
                Assert.True(after.Iteration >= saved, $"last went back from iteration {saved} to {after.Iteration}");
            }
            finally
            {
                if (!child.HasExited) child.Kill();
                child.WaitForExit();
                await stdout;
            }
        }
    }

    private static void Signal(Process p, string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", p.Id.ToString()])!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
