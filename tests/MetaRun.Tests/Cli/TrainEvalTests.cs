namespace MetaRun.Tests.Cli;

/// <summary>The first thing a user does: train, then evaluate, through the command line.</summary>
[Collection(ProcessWideCollection.Name)]
public class TrainEvalTests
{
    [Fact]
    public void TrainThenEvalOnSinusoidWritesTheRunFolderAndResult()
    {
        var dir = TestPaths.NewTempDir("cli");
        var path = Path.Combine(dir, "ok.yaml");
        File.WriteAllText(path, TestConfigs.TinySinusoid.Replace("interval: 0", "interval: 1\n  episodes: 10"));
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", path, "--out", run);
        Assert.True(code == 0, err);
        foreach (var f in new[] { "config.yaml", "metrics.jsonl", "metrics.csv", "train.log", "checkpoints/last.safetensors", "checkpoints/best.safetensors" })
            Assert.True(File.Exists(Path.Combine(run, f)), $"{f} missing");
        var again = CliRunner.Run("train", path, "--out", run);
        Assert.Equal(2, again.Code);
        Assert.Contains("--resume", again.Err);

        var result = Path.Combine(dir, "eval.json");
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", run, "--episodes", "20", "--out", result);
        Assert.True(code == 0, err);
        var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(result)).RootElement;
        Assert.Equal("mse", json.GetProperty("metric").GetString());
        Assert.Equal(20, json.GetProperty("episodes").GetInt32());
        Assert.True(json.GetProperty("mean").GetDouble() > 0);

        (code, _, err) = CliRunner.Run("eval", "--checkpoint", run, "--set", "algorithm.outer_lr=1");
        Assert.Equal(2, code);
        Assert.Contains("algorithm.outer_lr", err);
    }
}
