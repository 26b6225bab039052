namespace MetaRun.Tests.Cli;

/// <summary>The commands train prints for the next step can be pasted as they are: a path with a space is quoted.</summary>
[Collection(ProcessWideCollection.Name)]
public sealed class HintQuotingTests
{
    [Fact]
    public void TheEvaluateHintQuotesAPathWithASpace()
    {
        var dir = Path.Combine(TestPaths.NewTempDir("hint"), "my runs", "a");
        var (code, output, err) = CliRunner.Run("train", Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"), "--out", dir,
            "--set", "algorithm.iterations=2", "--set", "eval.interval=0", "--set", "checkpoint.interval=2");
        Assert.True(code == 0, err);
        Assert.Contains($"evaluate with: metarun eval '{dir}'", output);
    }
}
