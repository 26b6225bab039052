using LibTorch;
using MetaRun.Config;
using MetaRun.Training;
using Serilog.Core;

namespace MetaRun.Tests.Training;


public class ResumeTests
{
    private static RunConfig Config(int iterations) => ConfigLoader.Load(Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"),
        [$"algorithm.iterations={iterations}", "eval.interval=10", "eval.episodes=20", "checkpoint.interval=10", "threads=1"]);

    private static byte[] Weights(string runDir)
    {
        using var c = Checkpoint.Load(Path.Combine(runDir, "checkpoints", "last.safetensors"));
        return c.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToBytes()).ToArray();
    }

    private static void Train(string dir, int iterations, bool resume)
    {
        using var experiment = Experiment.Create(Config(iterations), null);
        using var checkpoint = resume ? Checkpoint.Load(Path.Combine(dir, "checkpoints", "last.safetensors")) : null;
        new Trainer(experiment, RunDirectory.At(dir), Logger.None).Run(checkpoint);
    }

    [Fact]
    public void InterruptedAndResumedRunEndsBitIdenticalToAnUninterruptedOne()
    {
        var straight = TestPaths.NewTempDir("straight");
        Train(straight, 40, resume: false);

        var interrupted = TestPaths.NewTempDir("resumed");
        Train(interrupted, 20, resume: false);
        // Rows an interrupted run wrote after its last checkpoint are dropped on resume.
        File.AppendAllText(Path.Combine(interrupted, "metrics.jsonl"), "{\"iteration\":21,\"train_loss\":9}\n");
        Train(interrupted, 40, resume: true);

        Assert.Equal(Weights(straight), Weights(interrupted));
        var rows = File.ReadAllLines(Path.Combine(interrupted, "metrics.jsonl"));
        Assert.Equal(40, rows.Length);
        Assert.Equal(File.ReadAllLines(Path.Combine(straight, "metrics.csv")).Select(StripSeconds), File.ReadAllLines(Path.Combine(interrupted, "metrics.csv")).Select(StripSeconds));
    }

    [Fact]
    public void SameSeedTwiceGivesIdenticalWeights()
    {
        var a = TestPaths.NewTempDir("a");
        var b = TestPaths.NewTempDir("b");
        Train(a, 10, resume: false);
        Train(b, 10, resume: false);
        Assert.Equal(Weights(a), Weights(b));
    }

    [Fact]
    public void ResumeWithAChangedConfigIsRefused()
    {
        var dir = TestPaths.NewTempDir("changed");
        Train(dir, 10, resume: false);
        var changed = Config(20);
        changed.Algorithm.InnerLr = 0.02;
        using var experiment = Experiment.Create(changed, null);
        using var checkpoint = Checkpoint.Load(Path.Combine(dir, "checkpoints", "last.safetensors"));
        var e = Assert.Throws<CheckpointException>(() => new Trainer(experiment, RunDirectory.At(dir), Logger.None).Run(checkpoint));
        Assert.Contains("different config", e.Message);
    }

    private static string StripSeconds(string csvLine) => csvLine[..csvLine.LastIndexOf(',')];
}
