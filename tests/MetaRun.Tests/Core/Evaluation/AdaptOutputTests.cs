using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Evaluation;

/// <summary>adapt --out to a folder that does not exist: the result is printed first (as eval does), then exit 5 naming the file in words.</summary>
[Collection(ProcessWideCollection.Name)]
public sealed class AdaptOutputTests : IDisposable
{
    private readonly SmallImageRun fixture = new("adaptout");

    public void Dispose() => fixture.Dispose();

    [Fact]
    public void AnUnwritableOutPrintsTheResultFirst()
    {
        var run = fixture.Train();
        var (support, query) = fixture.SupportAndQuery();
        var missing = Path.Combine(fixture.Dir, "no-such-folder", "p.csv");
        var (code, output, err) = CliRunner.Run("adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", missing);
        Assert.True(code == 5, err);
        Assert.Contains("accuracy", output);
        Assert.Contains("true \\ predicted", output);
        Assert.Contains($"{missing}: cannot write the predictions (its folder does not exist)", err);
        Assert.DoesNotContain("Could not find a part of the path", err);
    }
}
