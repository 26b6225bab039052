using System.Text.Json;
using MetaRun.Tests.Cli;
using MetaRun.Training;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// MLDG through the CLI on real Omniglot with the shipped CPU config (lake split: the test
/// alphabets are unseen in training), evaluated on the test split without adaptation (the
/// config's test_inner_steps: 0) and, through `--set algorithm.test_inner_steps=10`, with it.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class MldgCliTests
{
    [Fact]
    public void TrainsOnAlphabetsAndEvaluatesUnseenAlphabetsWithAndWithoutAdaptation()
    {
        var dir = TestPaths.NewTempDir("mldg-cli");
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", Path.Combine(TestPaths.Configs, "omniglot", "mldg-5w1s-cpu.yaml"), "--out", run, "--data-root", TestPaths.SharedDatasets,
            "--set", "algorithm.iterations=3", "--set", "algorithm.meta_batch_size=2", "--set", "model.filters=8", "--set", "eval.interval=3", "--set", "eval.episodes=4",
            "--set", "threads=1", "--set", "workers=2");
        Assert.True(code == 0, err);
        JsonElement Eval(string name, params string[] extra)
        {
            var result = Path.Combine(dir, name);
            var (c, _, e) = CliRunner.Run(["eval", "--checkpoint", run, "--episodes", "6", "--out", result, "--data-root", TestPaths.SharedDatasets, .. extra]);
            Assert.True(c == 0, e);
            return JsonDocument.Parse(File.ReadAllText(result)).RootElement;
        }
        var adapted = Eval("adapted.json", "--set", "algorithm.test_inner_steps=10");
        var plain = Eval("plain.json");
        Assert.Equal("test", adapted.GetProperty("split").GetString());
        Assert.Equal(10, adapted.GetProperty("inner_steps").GetInt32());
        Assert.Equal(0, plain.GetProperty("inner_steps").GetInt32());
        Assert.InRange(adapted.GetProperty("mean").GetDouble(), 0.0, 1.0);
        Assert.InRange(plain.GetProperty("mean").GetDouble(), 0.0, 1.0);
        // Ten steps at α = 0.5 on a one-shot support set move the predictions.
        Assert.NotEqual(adapted.GetProperty("mean").GetDouble(), plain.GetProperty("mean").GetDouble());
    }

    [Fact]
    public void AnInterruptedRunResumesBitIdentically()
    {
        var dir = TestPaths.NewTempDir("mldg-resume");
        string[] Args(string run, int iterations, bool resume) =>
            ["train", Path.Combine(TestPaths.Configs, "omniglot", "mldg-5w1s-cpu.yaml"), resume ? "--resume" : "--out", run, "--data-root", TestPaths.SharedDatasets,
             "--set", $"algorithm.iterations={iterations}", "--set", "algorithm.meta_batch_size=2", "--set", "model.filters=8", "--set", "eval.interval=0",
             "--set", "checkpoint.interval=2", "--set", "threads=1", "--set", "workers=2"];
        byte[] Weights(string run)
        {
            using var c = Checkpoint.Load(Path.Combine(run, "checkpoints", "last.safetensors"));
            return [.. c.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToBytes())];
        }
        var (straight, resumed) = (Path.Combine(dir, "straight"), Path.Combine(dir, "resumed"));
        // Each run in a process of its own, as a user's are (see ModelBasedRunTests).
        var (code, err) = MetaRun.Tests.Distributed.Metarun.Run(Args(straight, 4, resume: false));
        Assert.True(code == 0, err);
        (code, err) = MetaRun.Tests.Distributed.Metarun.Run(Args(resumed, 2, resume: false));
        Assert.True(code == 0, err);
        var early = Weights(resumed);
        (code, err) = MetaRun.Tests.Distributed.Metarun.Run(Args(resumed, 4, resume: true));
        Assert.True(code == 0, err);
        Assert.NotEqual(early, Weights(resumed));
        Assert.Equal(Weights(straight), Weights(resumed));
    }
}
