using System.IO.Compression;
using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>Bad Omniglot layouts, built small in temporary folders.</summary>
public sealed class OmniglotInputTests : IDisposable
{
    private readonly TempDir dir = new("omniglot-bad");
    private readonly TempDir cache = new("omniglot-bad-cache");

    public void Dispose()
    {
        dir.Dispose();
        cache.Dispose();
    }

    private DataException OpenFails(string root) =>
        Assert.Throws<DataException>(() => TaskFamilies.Open(new MetaRun.Config.DataConfig { Dataset = MetaRun.Config.Dataset.Omniglot, Root = root }, null, 1,
            new DataOptions { CacheDir = cache.Path }));

    [Fact]
    public void MissingDataRootIsNamed()
    {
        var root = dir.Sub("absent");
        var e = OpenFails(root);
        Assert.Contains(root, e.Message);
        Assert.Contains("data.root", e.Message); // says where the root came from
    }

    [Fact]
    public void MissingDatasetFolderIsNamed()
    {
        var e = OpenFails(dir.Path);
        Assert.Contains(Path.Combine(dir.Path, "omniglot"), e.Message);
        Assert.Contains("data fetch omniglot", e.Message);
    }

    [Fact]
    public void MissingPartIsNamed()
    {
        Directory.CreateDirectory(dir.Sub("omniglot"));
        var e = OpenFails(dir.Path);
        Assert.Contains("images_background.zip", e.Message);
        Assert.Contains(dir.Sub("omniglot"), e.Message);
    }

    [Fact]
    public void FileThatIsNotAZipIsNamed()
    {
        Directory.CreateDirectory(dir.Sub("omniglot"));
        File.WriteAllText(dir.Sub("omniglot", "images_background.zip"), "not a zip at all");
        File.WriteAllText(dir.Sub("omniglot", "images_evaluation.zip"), "not a zip either");
        var e = OpenFails(dir.Path);
        Assert.Matches(@"images_(background|evaluation)\.zip: not a zip archive", e.Message);
    }

    [Fact]
    public void ZipMissingAnImageNamesIt()
    {
        Directory.CreateDirectory(dir.Sub("omniglot"));
        foreach (var part in Omniglot.Parts)
        {
            using var zip = ZipFile.Open(dir.Sub("omniglot", part + ".zip"), ZipArchiveMode.Create);
            zip.CreateEntry($"{part}/README.txt");
        }
        var e = OpenFails(dir.Path);
        Assert.Matches(@"has no images_(background|evaluation)/[^/]+/character01/\d{4}_01\.png", e.Message);
    }

    [Fact]
    public void UnpackedFolderMissingAnImageNamesIt()
    {
        // images_background unpacked but empty: the first expected file is named.
        Directory.CreateDirectory(dir.Sub("omniglot", "images_background"));
        File.WriteAllText(dir.Sub("omniglot", "images_evaluation.zip"), "x");
        var e = OpenFails(dir.Path);
        Assert.Contains(dir.Sub("omniglot", "images_background", "Alphabet_of_the_Magi", "character01", "0709_01.png"), e.Message);
    }

    [Fact]
    public void UnpackedFolderReadsTheSameBytesAsTheZip()
    {
        // One alphabet unpacked from the real zip: the folder source returns the zip's bytes.
        var shared = Path.Combine(TestPaths.SharedDatasets, "omniglot");
        using var zip = ZipFile.OpenRead(Path.Combine(shared, "images_background.zip"));
        var unpacked = dir.Sub("unpacked");
        foreach (var entry in zip.Entries.Where(e => e.FullName.StartsWith("images_background/Arcadian/", StringComparison.Ordinal) && e.Length > 0))
        {
            var path = Path.Combine(unpacked, entry.FullName);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            entry.ExtractToFile(path);
        }
        using var folder = OmniglotSourceAccess.Open(unpacked, "images_background");
        using var fromZip = OmniglotSourceAccess.Open(shared, "images_background");
        Assert.False(OmniglotSourceAccess.IsZip(folder));
        Assert.True(OmniglotSourceAccess.IsZip(fromZip));
        var arcadian = Omniglot.Characters.Where(c => c.Alphabet.Name == "Arcadian").ToArray();
        Assert.Equal(26, arcadian.Length);
        foreach (var c in arcadian)
            for (var d = 1; d <= 20; d++)
                Assert.Equal(OmniglotSourceAccess.Read(fromZip, c.ImagePath(d)), OmniglotSourceAccess.Read(folder, c.ImagePath(d)));
    }

    [Fact]
    public void ADamagedDeflateStreamIsCalledDamaged()
    {
        using var dir = new TempDir("deflate");
        var omniglot = Directory.CreateDirectory(dir.Sub("omniglot")).FullName;
        var zipPath = Path.Combine(omniglot, "images_background.zip");
        const string rel = "images_background/Arcadian/character01/0001_01.png";
        var content = Enumerable.Range(0, 20_000).Select(i => (byte)(i * i % 251)).ToArray();
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Create))
        using (var s = zip.CreateEntry(rel, CompressionLevel.Optimal).Open())
            s.Write(content);
        // Flip bytes inside the compressed data: after the local header (30 bytes + the name), before the central directory.
        var bytes = File.ReadAllBytes(zipPath);
        var start = 30 + rel.Length;
        for (var i = start + 20; i < start + 60; i++) bytes[i] ^= 0x5A;
        File.WriteAllBytes(zipPath, bytes);

        using var source = OmniglotSourceAccess.Open(omniglot, "images_background");
        var e = Assert.Throws<DataException>(() => OmniglotSourceAccess.Read(source, rel));
        Assert.Contains(zipPath + ":" + rel, e.Message);
        Assert.Contains("damaged", e.Message);
        Assert.DoesNotContain("unsupported compression method", e.Message);
    }
}

/// <summary>Test access to the internal Omniglot part reader.</summary>
internal static class OmniglotSourceAccess
{
    public static IDisposable Open(string datasetDir, string part) => OmniglotSource.Open(datasetDir, part);
    public static bool IsZip(IDisposable s) => ((OmniglotSource)s).IsZip;
    public static byte[] Read(IDisposable s, string rel) => ((OmniglotSource)s).Read(rel);
}
