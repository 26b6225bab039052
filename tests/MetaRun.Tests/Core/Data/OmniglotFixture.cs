using System.Diagnostics;
using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>
/// One decoded Omniglot shared by the real-data tests: prepared once into a temporary cache
/// folder (the first load), then opened again from that cache (the second load).
/// </summary>
public sealed class OmniglotFixture : IDisposable
{
    public OmniglotFixture()
    {
        Root = TestPaths.SharedDatasets;
        Cache = new TempDir("omniglot-cache");
        Options = new DataOptions { CacheDir = Cache.Path, Log = Messages.Add };
        var clock = Stopwatch.StartNew();
        First = (ImageTaskFamily)TaskFamilies.Open(DataTestSupport.OmniglotConfig(), null, Seed, Options);
        FirstLoadSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        Vinyals = (ImageTaskFamily)TaskFamilies.Open(DataTestSupport.OmniglotConfig(), null, Seed, Options);
        CachedLoadSeconds = clock.Elapsed.TotalSeconds;
        Lake = (ImageTaskFamily)TaskFamilies.Open(DataTestSupport.OmniglotConfig("lake"), null, Seed, Options);
        CacheFile = Directory.GetFiles(Cache.Path, "omniglot-28px-*.bin").Single();
    }

    public const long Seed = 7;
    public string Root { get; }
    public TempDir Cache { get; }
    public DataOptions Options { get; }
    public List<string> Messages { get; } = [];
    /// <summary>Decoded from the zips.</summary>
    public ImageTaskFamily First { get; }
    /// <summary>The same configuration read back from the cache.</summary>
    public ImageTaskFamily Vinyals { get; }
    public ImageTaskFamily Lake { get; }
    public string CacheFile { get; }
    public double FirstLoadSeconds { get; }
    public double CachedLoadSeconds { get; }

    public void Dispose()
    {
        First.Dispose();
        Vinyals.Dispose();
        Lake.Dispose();
        Cache.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class OmniglotCollection : ICollectionFixture<OmniglotFixture>
{
    public const string Name = "Omniglot (real data, decoded once)";
}
