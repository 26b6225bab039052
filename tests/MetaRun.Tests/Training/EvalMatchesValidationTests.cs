using System.Globalization;
using System.Text.Json;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Training;

/// <summary>On the real Omniglot: `metarun eval --split val` of the best checkpoint reproduces the validation accuracy logged in training.</summary>
[Collection(ConsoleCollection.Name)]
public class EvalMatchesValidationTests
{
    [Fact]
    public void EvalOfBestCheckpointReproducesLoggedValidationAccuracy()
    {
        var dir = TestPaths.NewTempDir("omniglot-eval");
        var run = Path.Combine(dir, "run");
        string[] sets = ["algorithm.iterations=4", "algorithm.meta_batch_size=4", "eval.interval=2", "eval.episodes=24", "data.train.queries=2"];
        var args = new List<string> { "train", Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), "--out", run, "--data-root", TestPaths.SharedDatasets };
        foreach (var s in sets) args.AddRange(["--set", s]);
        var (code, _, err) = CliRunner.Run(args.ToArray());
        Assert.True(code == 0, err);

        var logged = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.TryGetProperty("val_accuracy", out _))
            .Select(r => r.GetProperty("val_accuracy").GetDouble())
            .ToArray();
        Assert.Equal(2, logged.Length);

        var result = Path.Combine(dir, "eval.json");
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", Path.Combine(run, "checkpoints", "best.safetensors"), "--split", "val", "--episodes", "24",
            "--out", result, "--data-root", TestPaths.SharedDatasets);
        Assert.True(code == 0, err);
        var json = JsonDocument.Parse(File.ReadAllText(result)).RootElement;
        Assert.Equal("accuracy", json.GetProperty("metric").GetString());
        Assert.Equal(Math.Round(logged.Max(), 6), json.GetProperty("mean").GetDouble(), 6);
    }
}
