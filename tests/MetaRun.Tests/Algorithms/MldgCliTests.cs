using System.Text.Json;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// MLDG through the CLI on real Omniglot with the shipped CPU config (lake split: the test
/// alphabets are unseen in training), evaluated on the test split with the config's adaptation
/// steps and, through `--set algorithm.test_inner_steps=0`, without adaptation.
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
        var adapted = Eval("adapted.json");
        var plain = Eval("plain.json", "--set", "algorithm.test_inner_steps=0");
        Assert.Equal("test", adapted.GetProperty("split").GetString());
        Assert.Equal(10, adapted.GetProperty("inner_steps").GetInt32());
        Assert.Equal(0, plain.GetProperty("inner_steps").GetInt32());
        Assert.InRange(adapted.GetProperty("mean").GetDouble(), 0.0, 1.0);
        Assert.InRange(plain.GetProperty("mean").GetDouble(), 0.0, 1.0);
        // Ten steps at α = 0.5 on a one-shot support set move the predictions.
        Assert.NotEqual(adapted.GetProperty("mean").GetDouble(), plain.GetProperty("mean").GetDouble());
    }
}
