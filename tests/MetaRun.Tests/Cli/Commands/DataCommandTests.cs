using MetaRun.Config;
using LibTorch;
using MetaRun.Cli.Commands;
using MetaRun.Data;
using MetaRun.Tests.Data;

namespace MetaRun.Tests.Cli.Commands;

/// <summary>`metarun data verify`, `fetch --from` and `show` on the shared real Omniglot.</summary>
[Collection(OmniglotCollection.Name)]
public sealed class DataCommandOnOmniglotTests(OmniglotFixture fx)
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
    public void ShowDrawsTestEpisodesOfOtherWaysThanTheAlgorithmsHeadTakes()
    {
        using var dir = new TempDir("show");
        var config = dir.Sub("omniglot.yaml");
        // MAML's head has one output per training way: training would refuse 3-way tests, drawing them need not.
        File.WriteAllText(config, $"seed: {OmniglotFixture.Seed}\ndata:\n  dataset: omniglot\n  root: {fx.Root}\n  train: {{ways: 5}}\n  test: {{ways: 5, shots: 2, queries: 4}}\nalgorithm: {{name: maml}}\n");
        Assert.Throws<ConfigException>(() => ConfigLoader.Load(config, ["data.test.ways=3"]));
        var output = new StringWriter();
        Assert.Equal(ExitCodes.Success, DataCommand.Show(config, ["data.test.ways=3"], null, "test", 3, dir.Sub("episode.png"), output, new DataOptions { CacheDir = fx.Cache.Path }));
        Assert.Contains("3-way 2-shot 4-query", output.ToString());
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
        // The grid: 3 rows of 28 + 2 borders; 2 supports, a 14-pixel gap, 4 queries; each pixel
        // shown as 3 × 3 (28 px images become 84), below a header and right of the class labels.
        const int rawH = 2 + 3 * 30, rawW = 2 + 2 * 30 + 14 + 4 * 30, f = 3;
        int height = (int)image.Size(1), width = (int)image.Size(2);
        int top = height - rawH * f, left = width - rawW * f;
        Assert.True(top >= 16 && left >= 40, $"{width}×{height}");
        var px = image.ToArray<byte>();
        // Row 1's first support image is the episode's (label 1, support 0), shown as bytes.
        using var batch = fx.Vinyals.Sample(Split.Test, 3, 1, new EpisodeShape(3, 2, 4));
        var x = batch.SupportX.ToArray<float>();
        for (var y = 0; y < 28; y++)
        for (var i = 0; i < 28; i++)
            Assert.Equal((byte)MathF.Round(x[2 * 784 + y * 28 + i] * 255), px[(top + (2 + 30 + y) * f + 1) * width + left + (2 + i) * f + 1]);
        Assert.Equal(EpisodeGrid.Background, px[top * width + left]);
        // Each row has its label written in the margin (dark text on white), and the header its words.
        for (var row = 0; row < 3; row++)
        {
            var y0 = top + (2 + row * 30) * f;
            Assert.Contains(Enumerable.Range(y0, 28 * f).SelectMany(y => Enumerable.Range(0, left).Select(xx => px[y * width + xx])), v => v < 100);
        }
        Assert.Contains(Enumerable.Range(0, top).SelectMany(y => Enumerable.Range(left, rawW * f).Select(xx => px[y * width + xx])), v => v < 100);
        Assert.Contains("row 2 (label 2): images_", output.ToString());
    }
}

/// <summary>`metarun data` on missing and broken copies, and its exit codes.</summary>
public sealed class DataCommandTests : IDisposable
{
    private readonly TempDir dir = new("cli");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void VerifyListsMissingFilesAndExitsThree()
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
    public void DataCommandsExitWithTheDocumentedCodes()
    {
        Assert.Equal(ExitCodes.DataProblem, MetaRun.Cli.MetaRunCli.Run(["data", "verify", "omniglot", "--data-root", dir.Sub("nothing")]));
        Assert.Equal(ExitCodes.DataProblem, MetaRun.Cli.MetaRunCli.Run(["--data-root", dir.Sub("nothing"), "data", "verify", "miniimagenet"]));
        Assert.Equal(ExitCodes.BadUsage, MetaRun.Cli.MetaRunCli.Run(["data", "verify", "cifar"]));
        Assert.Equal(ExitCodes.BadUsage, MetaRun.Cli.MetaRunCli.Run(["data", "show", dir.Sub("absent.yaml"), "--out", dir.Sub("x.png")]));
    }
}

