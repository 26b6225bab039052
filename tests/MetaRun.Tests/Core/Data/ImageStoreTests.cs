using MetaRun.Data;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Data;

/// <summary>The decoded-image cache as training meets it: a damaged cache is reported and rebuilt.</summary>
public class ImageStoreTests
{
    [Fact]
    public void ADamagedCacheIsReportedAndRebuiltDuringTrain()
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
