using MetaRun.Algorithms;

namespace MetaRun.Tests.Cli.Commands;

/// <summary>`metarun list` reads the registry, the config schema and the ready configs.</summary>
[Collection(ProcessWideCollection.Name)]
public sealed class ListCommandTests
{
    [Fact]
    public void ListAloneShowsEveryRegisteredAlgorithmWithItsPaper()
    {
        var (code, output, err) = CliRunner.Run("list");
        Assert.True(code == 0, err);
        Assert.All(AlgorithmRegistry.All, a => Assert.Contains(a.Paper, output));
        Assert.Equal(AlgorithmRegistry.All.Count + 1, output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void KeysForOneAlgorithmLeaveOutTheKeysItDoesNotRead()
    {
        var (code, output, err) = CliRunner.Run("list", "keys", "--algorithm", "matchingnet");
        Assert.True(code == 0, err);
        Assert.Contains("algorithm.fce", output);
        Assert.Contains("algorithm.outer_lr", output);
        Assert.DoesNotContain("algorithm.inner_lr", output);
        var (bad, _, badErr) = CliRunner.Run("list", "keys", "--algorithm", "nope");
        Assert.Equal(2, bad);
        Assert.Contains("unknown algorithm 'nope'", badErr);
    }

    [Fact]
    public void ConfigsShowThePublishedFigureTheirHeaderQuotes()
    {
        var (code, output, err) = CliRunner.Run("list", "configs");
        Assert.True(code == 0, err);
        var maml = output.Split('\n').Single(l => l.StartsWith("omniglot/maml-5w1s.yaml", StringComparison.Ordinal) || l.Contains(" omniglot/maml-5w1s.yaml "));
        Assert.Contains("Published: 98.7", maml);
    }
}
