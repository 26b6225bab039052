using System.Net;
using System.Text.Json;
using LibTorch;
using MetaRun.Cli.Commands;
using MetaRun.Data;

namespace MetaRun.Tests.Data;


[Collection(OmniglotCollection.Name)]
public sealed class OmniglotCliTests(OmniglotFixture fx)
{
    [Fact]
    public void VerifyPassesOnTheSharedOmniglot()
    {
        var output = new StringWriter();
        Assert.Equal(ExitCodes.Success, DataCommand.Verify("omniglot", fx.Root, output));
        var text = output.ToString();
        Assert.Contains("alphabets with images: 50 / 50", text);
        Assert.Contains("complete characters (20 images each): 1623 / 1623", text);
        Assert.Contains("images that decode: 32460 / 32460", text);
        Assert.Contains("complete", text);
    }

    [Fact]
    public void FetchFromCopiesAVerifiedCopy()
    {
        using var target = new TempDir("fetch");
        var output = new StringWriter();
        Assert.Equal(ExitCodes.Success, DataCommand.Fetch("omniglot", Path.Combine(fx.Root, "omniglot"), target.Path, output));
        foreach (var zip in new[] { "images_background.zip", "images_evaluation.zip" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(fx.Root, "omniglot", zip)), File.ReadAllBytes(target.Sub("omniglot", zip)));
        Assert.Empty(Directory.GetFiles(target.Sub("omniglot"), "*.tmp"));
        Assert.Contains("omniglot is ready", output.ToString());
    }

    [Fact]
    public void ShowWritesTheEpisodeGrid()
    {
        using var dir = new TempDir("show");
        var config = dir.Sub("omniglot.yaml");
        File.WriteAllText(config, $"seed: {OmniglotFixture.Seed}\ndata:\n  dataset: omniglot\n  root: {fx.Root}\n  train: {{ways: 3}}\n  test: {{ways: 3, shots: 2, queries: 4}}\n");
        var png = dir.Sub("out", "episode.png");
        var output = new StringWriter();
        // The fixture's cache holds this data.
        Assert.Equal(ExitCodes.Success, DataCommand.Show(config, [], null, "test", 3, png, output, new DataOptions { CacheDir = fx.Cache.Path }));
        using var scope = Torch.NewScope();
        var image = Image.Decode(File.ReadAllBytes(png), 1);
        // 3 rows of 28 + 2 borders; 2 supports, a 14-pixel gap, 4 queries.
        Assert.Equal([1L, 2 + 3 * 30, 2 + 2 * 30 + 14 + 4 * 30], image.Shape);
        var px = image.ToArray<byte>();
        var width = (int)image.Size(2);
        // Row 1's first support image is the episode's (label 1, support 0), shown as bytes.
        using var batch = fx.Vinyals.Sample(Split.Test, 3, 1, new EpisodeShape(3, 2, 4));
        var x = batch.SupportX.ToArray<float>();
        for (var y = 0; y < 28; y++)
        for (var i = 0; i < 28; i++)
            Assert.Equal((byte)MathF.Round(x[2 * 784 + y * 28 + i] * 255), px[(2 + 30 + y) * width + 2 + i]);
        Assert.Equal(EpisodeGrid.Background, px[0]);
        Assert.Contains("row 2 (label 2): images_", output.ToString());
    }
}

public sealed class DataCliTests : IDisposable
{
    private readonly TempDir dir = new("cli");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void VerifyListsMissingFilesAndExits3()
    {
        var omniglot = dir.Sub("omniglot");
        Directory.CreateDirectory(Path.Combine(omniglot, "images_background", "Arcadian", "character01"));
        File.WriteAllText(Path.Combine(omniglot, "images_background", "Arcadian", "character01", "0001_01.png"), "garbage");
        var output = new StringWriter();
        Assert.Equal(ExitCodes.DataProblem, DataCommand.Verify("omniglot", dir.Path, output));
        var text = output.ToString();
        Assert.Contains($"missing: {Path.Combine(omniglot, "images_background", "Arcadian", "character01", "0001_02.png")}", text);
        Assert.Contains($"unreadable: {Path.Combine(omniglot, "images_background", "Arcadian", "character01", "0001_01.png")}", text);
        Assert.Contains("images_evaluation", text); // the missing part
        Assert.Contains("INCOMPLETE", text);
    }

    [Fact]
    public void VerifyOfAMissingDatasetFolderIsADataException()
    {
        var e = Assert.Throws<DataException>(() => DataCommand.Verify("miniimagenet", dir.Path, TextWriter.Null));
        Assert.Contains(Path.Combine(dir.Path, "miniimagenet"), e.Message);
    }

    [Fact]
    public void FetchFromAnIncompleteCopyCopiesNothing()
    {
        var from = dir.Sub("from");
        Directory.CreateDirectory(Path.Combine(from, "images_background"));
        var e = Assert.Throws<DataException>(() => DataCommand.Fetch("omniglot", from, dir.Sub("root"), TextWriter.Null));
        Assert.Contains("not a complete Omniglot", e.Message);
        Assert.False(Directory.Exists(dir.Sub("root", "omniglot", "images_background")));
    }

    [Fact]
    public void DownloadWithoutNetworkFailsClearly()
    {
        var e = Assert.Throws<DataException>(() => OmniglotFetch.Download(dir.Sub("root", "omniglot"), DataOptions.Default, new FakeHandler(null)));
        Assert.Contains("cannot download https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip", e.Message);
        Assert.Contains("--from", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Sub("root", "omniglot")));
    }

    [Fact]
    public void DownloadWithTheWrongChecksumKeepsNothing()
    {
        var e = Assert.Throws<DataException>(() => OmniglotFetch.Download(dir.Sub("root", "omniglot"), DataOptions.Default, new FakeHandler("not the zip"u8.ToArray())));
        Assert.Contains("MD5", e.Message);
        Assert.Contains("68d2efa1b9178cc56df9314c21c6e718", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Sub("root", "omniglot")));
    }

    [Fact]
    public void MiniImageNetCannotBeFetched()
    {
        var e = Assert.Throws<DataException>(() => DataCommand.Fetch("miniimagenet", null, dir.Path, TextWriter.Null));
        Assert.Contains("cannot be fetched automatically", e.Message);
    }

    [Fact]
    public void ShowRefusesRegression()
    {
        var config = dir.Sub("sin.yaml");
        File.WriteAllText(config, "data:\n  dataset: sinusoid\n");
        var e = Assert.Throws<MetaRunException>(() => DataCommand.Show(config, [], null, "train", 0, dir.Sub("x.png"), TextWriter.Null));
        Assert.Equal(ExitCodes.BadUsage, e.ExitCode);
    }

    [Fact]
    public void DataBenchWritesItsFigures()
    {
        var root = MiniImageNetBuilder.Build(dir.Sub("root"));
        var config = dir.Sub("mini.yaml");
        File.WriteAllText(config, $"data:\n  dataset: miniimagenet\n  root: {root}\n  image_size: 16\n  train: {{ways: 2, shots: 1, queries: 2}}\n  test: {{ways: 2}}\nalgorithm:\n  meta_batch_size: 4\n");
        var json = dir.Sub("bench-data.json");
        var output = new StringWriter();
        Assert.Equal(ExitCodes.Success, BenchCommand.RunData(config, [], null, 200, output, json));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var r = doc.RootElement;
        Assert.Equal("miniimagenet", r.GetProperty("dataset").GetString());
        Assert.Equal(42, r.GetProperty("images").GetInt32());
        Assert.Equal(200, r.GetProperty("episodes").GetInt32());
        Assert.True(r.GetProperty("episodes_per_second").GetDouble() > 0);
        Assert.True(r.GetProperty("prepare_seconds").GetDouble() > 0);
        Assert.Contains("episodes/s", output.ToString());
    }

    [Fact]
    public void CliRunsDataCommandsWithExitCodes()
    {
        Assert.Equal(ExitCodes.DataProblem, MetaRun.Cli.MetaRunCli.Run(["data", "verify", "omniglot", "--data-root", dir.Sub("nothing")]));
        Assert.Equal(ExitCodes.DataProblem, MetaRun.Cli.MetaRunCli.Run(["--data-root", dir.Sub("nothing"), "data", "verify", "miniimagenet"]));
        Assert.Equal(ExitCodes.BadUsage, MetaRun.Cli.MetaRunCli.Run(["data", "verify", "cifar"]));
        Assert.Equal(ExitCodes.BadUsage, MetaRun.Cli.MetaRunCli.Run(["data", "show", dir.Sub("absent.yaml"), "--out", dir.Sub("x.png")]));
    }

    private sealed class FakeHandler(byte[]? body) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            body == null
                ? throw new HttpRequestException("Name or service not known (github.com:443)")
                : Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) });
    }
}

[Collection(DataSerialCollection.Name)]
public sealed class DataRootTests
{
    [Fact]
    public void ResolutionOrder()
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
    public void CacheDirResolutionOrder()
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
