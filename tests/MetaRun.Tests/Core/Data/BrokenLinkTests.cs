using MetaRun.Tests.Cli;
using MetaRun.Tests.Evaluation;

namespace MetaRun.Tests.Data;

/// <summary>A class folder that is a dangling symbolic link or a link loop is refused naming it (exit 3), not dropped without a word.</summary>
[Collection(ProcessWideCollection.Name)]
public sealed class BrokenLinkTests : IDisposable
{
    private readonly SmallImageRun fixture = new("links");

    public void Dispose() => fixture.Dispose();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ABrokenClassLinkIsNamed(bool loop)
    {
        var link = Path.Combine(fixture.Root, "train", "moved");
        File.CreateSymbolicLink(link, loop ? link : Path.Combine(fixture.Dir, "gone"));
        var (code, _, err) = CliRunner.Run("train", fixture.Config(), "--out", Path.Combine(fixture.Dir, "r"));
        Assert.True(code == 3, err);
        Assert.Contains(link, err);
        Assert.Contains("symbolic link", err);
    }
}
