using System.Net;
using System.Text.Json;
using LibTorch;
using MetaRun.Cli.Commands;
using MetaRun.Data;

namespace MetaRun.Tests.Data;

[Collection(DataSerialCollection.Name)]
public sealed class DataRootTests
{
    [Fact]
    public void TheDataRootComesFromTheFlagThenTheConfigThenTheEnvironmentThenTheDefault()
    {
        var previous = Environment.GetEnvironmentVariable(DataRoot.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(DataRoot.EnvironmentVariable, "/env/root");
            Assert.Equal(("/cli/root", "--data-root"), DataRoot.ResolveWithSource("/cli/root", "/config/root"));
            Assert.Equal(("/config/root", "data.root in the config"), DataRoot.ResolveWithSource(null, "/config/root"));
            Assert.Equal("/env/root", DataRoot.Resolve(null, null));
            Environment.SetEnvironmentVariable(DataRoot.EnvironmentVariable, null);
            Assert.Equal(DataRoot.Default, DataRoot.Resolve(null, null));
            Assert.EndsWith("/.metarun/datasets", DataRoot.Default);
            Assert.Equal(Path.Combine(Directory.GetCurrentDirectory(), "rel", "data"), DataRoot.Resolve("rel/data", null));
            Assert.Equal(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "d"), DataRoot.Resolve(null, "~/d"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(DataRoot.EnvironmentVariable, previous);
        }
    }

    [Fact]
    public void TheCacheFolderComesFromItsOptionThenTheEnvironmentThenTheDefault()
    {
        var previous = Environment.GetEnvironmentVariable(ImageCache.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(ImageCache.EnvironmentVariable, "/env/cache");
            Assert.Equal("/opt/cache", ImageCache.ResolveDir(new DataOptions { CacheDir = "/opt/cache" }));
            Assert.Equal("/env/cache", ImageCache.ResolveDir(new DataOptions()));
            Environment.SetEnvironmentVariable(ImageCache.EnvironmentVariable, null);
            Assert.EndsWith("/.cache/metarun", ImageCache.ResolveDir(new DataOptions()));
        }
        finally
        {
            Environment.SetEnvironmentVariable(ImageCache.EnvironmentVariable, previous);
        }
    }

    [Fact]
    public void TorchThreadsAlsoSizesOpenBlasWhereLibTorchUsesIt()
    {
        var threads = Torch.Threads;
        var usesOpenBlas = File.ReadAllText("/proc/self/maps").Contains("libopenblas");
        try
        {
            foreach (var n in new[] { 1, 2 })
            {
                Torch.Threads = n;
                Assert.Equal(n, Torch.Threads);
                // Left at the machine's core count, OpenBLAS's own pool oversubscribes task-parallel workers.
                Assert.Equal(usesOpenBlas ? n : null, Torch.BlasThreads);
            }
        }
        finally
        {
            Torch.Threads = threads;
        }
    }

    [Fact]
    public void SamplingDoesNotDependOnTorchThreads()
    {
        using var dir = new TempDir("threads");
        var root = MiniImageNetBuilder.Build(dir.Sub("root"));
        var threads = Torch.Threads;
        try
        {
            var batches = new List<byte[]>();
            foreach (var n in new[] { 1, 2 })
            {
                Torch.Threads = n;
                using var f = TaskFamilies.Open(MiniImageNetBuilder.Config(root), null, 4, new DataOptions { UseCache = false });
                using var b = f.Sample(Split.Train, 0, 6, new EpisodeShape(3, 2, 2));
                batches.Add([.. b.SupportX.ToBytes(), .. b.QueryX.ToBytes(), .. b.SupportY.ToBytes()]);
            }
            Assert.Equal(batches[0], batches[1]);
        }
        finally
        {
            Torch.Threads = threads;
        }
    }
}
