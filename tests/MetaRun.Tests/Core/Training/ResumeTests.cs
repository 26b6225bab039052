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

    // Written before the enumerated settings became enums: a checkpoint's resume check compares
    // this hash, so the same config must keep writing the same text and the same hash.
    private const string Pinned = """
        name: pinned
        seed: 7
        device: cpu
        execution: per_task
        data:
          dataset: miniimagenet
          split: lake
          train: {ways: 5, shots: 1, queries: 5}
        model:
          name: resnet12
          downsample: maxpool
        algorithm:
          name: reptile
          inner_optimizer: adam
          outer_optimizer: sgd
          outer_lr_schedule: cosine
        """;

    [Fact]
    public void AConfigWritesTheSameYamlAndHashAsBeforeItsSettingsWereTyped()
    {
        var config = ConfigLoader.Parse(Pinned, "pinned.yaml");
        var yaml = ConfigLoader.ToYaml(config);
        foreach (var line in new[] { "\ndevice: cpu\n", "\nexecution: per_task\n", "\n  dataset: miniimagenet\n  root: \n", "\n  split: lake\n",
                     "\n  name: resnet12\n", "\n  downsample: maxpool\n", "\n  inner_optimizer: adam\n", "\n  outer_optimizer: sgd\n", "\n  outer_lr_schedule: cosine\n" })
            Assert.Contains(line, yaml);
        Assert.Equal("a8408fc8331709d1", ConfigLoader.Hash(config));
        Assert.Equal("a8408fc8331709d1", ConfigLoader.Hash(ConfigLoader.ParseResolved(yaml, "config.yaml")));
        Assert.Equal("e839724b21b021b9", ConfigLoader.Hash(ConfigLoader.Parse(Pinned.Replace("miniimagenet", "sinusoid").Replace("resnet12", "mlp"), "pinned.yaml")));
        Assert.Equal("4f71a37ef3f2d684", ConfigLoader.Hash(new RunConfig()));
    }

    private static string StripSeconds(string csvLine) => csvLine[..csvLine.LastIndexOf(',')];
}
