using MetaRun.Sweeps;

namespace MetaRun.Tests.Sweeps;

/// <summary>A sweep.json of the wrong form is named with the place and the expected form in words, not .NET type names.</summary>
public sealed class ManifestErrorTests
{
    [Theory]
    [InlineData("{\"runs\": 5}")]
    [InlineData("{\"runs\": [{\"index\": \"x\"}]}")]
    [InlineData("[1, 2]")]
    public void AManifestOfTheWrongFormIsNamedInWords(string json)
    {
        var dir = TestPaths.NewTempDir("manifest");
        File.WriteAllText(Path.Combine(dir, SweepManifest.FileName), json);
        var e = Assert.Throws<MetaRunException>(() => SweepManifest.Read(dir));
        Assert.Contains(Path.Combine(dir, SweepManifest.FileName), e.Message);
        Assert.Contains("expected the JSON metarun writes", e.Message);
        Assert.DoesNotContain("`1", e.Message);
        Assert.DoesNotContain("MetaRun.Sweeps", e.Message);
    }
}
