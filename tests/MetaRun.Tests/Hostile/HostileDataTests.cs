using System.IO.Compression;
using MetaRun.Data;
using MetaRun.Tests.Data;

namespace MetaRun.Tests.Hostile;

/// <summary>Issue 16, cases 9 (a damaged deflate stream) and 10 (cache rebuilds reported during train).</summary>
public class HostileDataTests
{
    [Fact]
    public void Case9DamagedDeflateStreamIsCalledDamaged()
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

    [Theory]
    [InlineData("  train: {ways: 4}\n", "data.train.ways", ":6:", "3 classes")]
    [InlineData("  train: {ways: 2, queries: 2}\n  test: {ways: 2, shots: 3, queries: 4}\n", "data.test.queries", ":7:", "has 6 images")]
    public void Case8MiniImageNetEpisodesBeyondTheCsvSplitsExitTwoNamingTheKey(string tail, string key, string line, string says)
    {
        using var dir = new TempDir("mini-shape");
        var root = MiniImageNetBuilder.Build(dir.Sub("data"));
        var config = dir.Sub("c.yaml");
        File.WriteAllText(config, $"name: m\nalgorithm: {{name: protonet, iterations: 1, meta_batch_size: 1}}\ndata:\n  dataset: miniimagenet\n  image_size: 16\n{tail}");
        var (code, _, err) = ChildProcess.Run(["--data-root", root, "train", config, "--out", dir.Sub("run")], env: new Dictionary<string, string> { ["METARUN_CACHE_DIR"] = dir.Sub("cache") });
        Assert.True(code == 2, err);
        var last = err.Trim().Split('\n')[^1];
        Assert.True(last.Contains($"'{key}'"), err);
        Assert.Contains(config + line, last);
        Assert.Contains(says, last);
        Assert.False(File.Exists(dir.Sub("run", "metrics.csv")));
    }

    [Fact]
    public void Case10CacheRebuildIsReportedDuringTrain()
    {
        using var dir = new TempDir("cache-report");
        var config = dir.Sub("c.yaml");
        File.WriteAllText(config, "name: o\ndata:\n  dataset: omniglot\nalgorithm:\n  meta_batch_size: 1\n  iterations: 1\neval:\n  interval: 0\n");
        var env = new Dictionary<string, string> { ["METARUN_CACHE_DIR"] = dir.Sub("cache") };
        string[] Train(string run) => ["--data-root", TestPaths.SharedDatasets, "train", config, "--out", dir.Sub(run)];

        var (code, _, err) = ChildProcess.Run(Train("first"), env: env);
        Assert.True(code == 0, err);
        Assert.Contains("decoding 32460 images", err);
        Assert.Contains("cache written", err);

        var cached = Directory.GetFiles(dir.Sub("cache"), "omniglot-*.bin").Single();
        using (var f = new FileStream(cached, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length / 2;
            var b = f.ReadByte();
            f.Position = f.Length / 2;
            f.WriteByte((byte)(b ^ 1));
        }
        (code, _, err) = ChildProcess.Run(Train("second"), env: env);
        Assert.True(code == 0, err);
        Assert.Contains($"cache {cached} is not usable", err);
        Assert.Contains("rebuilding it", err);
        Assert.Contains("is not usable", File.ReadAllText(dir.Sub("second", "train.log")));
    }
}
