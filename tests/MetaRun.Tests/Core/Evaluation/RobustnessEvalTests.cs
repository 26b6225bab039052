using System.Text.Json;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Evaluation;

/// <summary>`metarun eval --attack` on a model trained on the real Omniglot: clean and attacked accuracy side by side.</summary>
[Collection(ProcessWideCollection.Name)]
public class RobustnessEvalTests
{
    [Fact]
    public void AnAttackLowersTheAccuracyOfAnUndefendedModelAndIsReportedBesideTheCleanOne()
    {
        var dir = TestPaths.NewTempDir("robust");
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), "--out", run, "--data-root", TestPaths.SharedDatasets,
            "--set", "algorithm.iterations=15", "--set", "algorithm.meta_batch_size=4", "--set", "model.filters=8", "--set", "eval.interval=0",
            "--set", "data.train.queries=2", "--set", "threads=1", "--set", "workers=1");
        Assert.True(code == 0, err);

        var plain = Path.Combine(dir, "plain.json");
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", run, "--episodes", "20", "--out", plain, "--data-root", TestPaths.SharedDatasets);
        Assert.True(code == 0, err);
        var clean = JsonDocument.Parse(File.ReadAllText(plain)).RootElement;
        Assert.False(clean.TryGetProperty("attack", out _));

        foreach (var (kind, extra) in new[] { ("fgsm", Array.Empty<string>()), ("pgd", new[] { "--steps", "3" }) })
        {
            var result = Path.Combine(dir, kind + ".json");
            string stdout;
            (code, stdout, err) = CliRunner.Run(["eval", "--checkpoint", run, "--episodes", "20", "--out", result, "--data-root", TestPaths.SharedDatasets,
                "--attack", kind, "--epsilon", "0.2", .. extra]);
            Assert.True(code == 0, err);
            var json = JsonDocument.Parse(File.ReadAllText(result)).RootElement;
            // The same episodes, adapted the same way: the clean figure is eval's own.
            Assert.Equal(clean.GetProperty("mean").GetDouble(), json.GetProperty("mean").GetDouble(), 6);
            var attack = json.GetProperty("attack");
            Assert.Equal(kind, attack.GetProperty("kind").GetString());
            Assert.Equal(0.2, attack.GetProperty("epsilon").GetDouble());
            Assert.True(attack.GetProperty("mean").GetDouble() < json.GetProperty("mean").GetDouble() - 0.05,
                $"{kind}: attacked {attack.GetProperty("mean").GetDouble()} vs clean {json.GetProperty("mean").GetDouble()}");
            Assert.Contains("under " + (kind == "fgsm" ? "FGSM" : "PGD"), stdout);
        }

        (code, _, err) = CliRunner.Run("eval", "--checkpoint", run, "--epsilon", "0.1", "--data-root", TestPaths.SharedDatasets);
        Assert.Equal(2, code);
        Assert.Contains("--attack", err);
        Assert.DoesNotContain("   at ", err);
    }
}
