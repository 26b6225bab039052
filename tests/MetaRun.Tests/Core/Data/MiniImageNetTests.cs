using LibTorch;
using MetaRun.Data;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Data;

public sealed class MiniImageNetTests : IDisposable
{
    private readonly TempDir dir = new("mini");
    private readonly TempDir cache = new("mini-cache");
    private readonly string root;
    private readonly List<string> log = [];

    public MiniImageNetTests() => root = MiniImageNetBuilder.Build(dir.Sub("root"));

    public void Dispose()
    {
        dir.Dispose();
        cache.Dispose();
    }

    private DataOptions Options(int degree = 0) => new() { CacheDir = cache.Path, Log = log.Add, MaxDegreeOfParallelism = degree };

    private ImageTaskFamily Open(long seed = 3, int imageSize = 16, int degree = 0) =>
        (ImageTaskFamily)TaskFamilies.Open(MiniImageNetBuilder.Config(root, imageSize), null, seed, Options(degree));

    private string Mini => Path.Combine(root, "miniimagenet");

    [Fact]
    public void TheRealLayoutLoadsWithItsSplitsClassesAndImages()
    {
        using var f = Open();
        Assert.Equal("miniimagenet", f.Name);
        Assert.Equal(3, f.ClassCount(Split.Train));
        Assert.Equal(2, f.ClassCount(Split.Val));
        Assert.Equal(2, f.ClassCount(Split.Test));
        Assert.Equal([3L, 16, 16], f.InputShape);
        Assert.Equal(7 * MiniImageNetBuilder.ImagesPerClass, f.Store.ImageCount);
        Assert.Equal("train/n01532829", f.ClassName(f.Classes(Split.Train)[0]));
        Assert.Equal("test/n01981276", f.ClassName(f.Classes(Split.Test)[1]));
        Assert.Equal(84, MiniImageNet.DefaultImageSize);
    }

    [Fact]
    public void PixelsAreNormalizedPerChannel()
    {
        using var f = Open();
        var shape = new EpisodeShape(2, 1, 2);
        var plan = f.Plan(Split.Val, 5, shape);
        using var batch = f.Sample(Split.Val, 5, 1, shape);
        Assert.Equal([1L, 2, 3, 16, 16], batch.SupportX.Shape);
        Assert.Equal([1L, 4, 3, 16, 16], batch.QueryX.Shape);
        var sx = batch.SupportX.ToArray<float>();
        for (var j = 0; j < 2; j++)
        {
            var source = f.Classes(Split.Val)[plan.Classes[j]].Source; // 3, 4: the val classes
            var (r, g, b) = MiniImageNetBuilder.ColorOf(source, plan.Images[j][0]);
            var rgb = new[] { r, g, b };
            for (var c = 0; c < 3; c++)
            {
                var want = (rgb[c] / 255f - MiniImageNet.Mean[c]) / MiniImageNet.Std[c];
                var tolerance = 3 / 255f / MiniImageNet.Std[c]; // JPEG rounding of a flat color
                for (var p = 0; p < 256; p++) Assert.InRange(sx[(j * 3 + c) * 256 + p], want - tolerance, want + tolerance);
            }
        }
    }

    [Fact]
    public void ImagesAlreadyAtTheSizeAreKeptAsDecoded()
    {
        // At 32 pixels the 32×32 sources (odd image numbers) are stored as decoded; the 40×48 ones are resized.
        using var f = Open(imageSize: 32);
        using var scope = Torch.NewScope();
        var file = Path.Combine(Mini, "images", $"{MiniImageNetBuilder.TrainLabels[1]}00000002.jpg");
        var decoded = Image.Decode(File.ReadAllBytes(file), 3);
        Assert.Equal([3L, 32, 32], decoded.Shape);
        Assert.Equal(decoded.ToArray<byte>(), f.Store.Image(1, 1).ToArray());
        var resized = Image.Decode(File.ReadAllBytes(Path.Combine(Mini, "images", $"{MiniImageNetBuilder.TrainLabels[1]}00000001.jpg")), 3);
        Assert.Equal([3L, 40, 48], resized.Shape);
        var want = F.Interpolate(resized.Unsqueeze(0).To(ScalarType.Float32), 32, 32, InterpolationMode.Bilinear, antialias: true);
        Assert.Equal((want + 0.5).Floor().Clamp(0, 255).To(ScalarType.UInt8).ToArray<byte>(), f.Store.Image(1, 0).ToArray());
    }

    [Fact]
    public void CacheIsReusedAndAFlippedByteRebuildsIt()
    {
        byte[] pixels;
        using (var first = Open()) pixels = first.Store.Pixels.ToArray();
        Assert.Contains(log, m => m.Contains("cache written"));
        var file = Directory.GetFiles(cache.Path, "miniimagenet-16px-*.bin").Single();
        log.Clear();
        using (var second = Open()) Assert.Equal(pixels, second.Store.Pixels);
        Assert.DoesNotContain(log, m => m.Contains("cache written") || m.Contains("decoding"));

        // A flipped payload byte: detected, rebuilt, rewritten.
        var bytes = File.ReadAllBytes(file);
        bytes[^100] ^= 0x01;
        File.WriteAllBytes(file, bytes);
        log.Clear();
        using (var third = Open()) Assert.Equal(pixels, third.Store.Pixels);
        Assert.Contains(log, m => m.Contains("checksum") && m.Contains("rebuilding"));
        Assert.Contains(log, m => m.Contains("cache written"));
        Assert.NotEqual(bytes, File.ReadAllBytes(file));

        // A flipped header byte (in the key): detected too.
        bytes = File.ReadAllBytes(file);
        bytes[24] ^= 0x40;
        File.WriteAllBytes(file, bytes);
        log.Clear();
        using (var fourth = Open()) Assert.Equal(pixels, fourth.Store.Pixels);
        Assert.Contains(log, m => m.Contains("header checksum"));

        // A truncated file.
        File.WriteAllBytes(file, File.ReadAllBytes(file)[..^10]);
        log.Clear();
        using (var fifth = Open()) Assert.Equal(pixels, fifth.Store.Pixels);
        Assert.Contains(log, m => m.Contains("not usable"));
    }

    [Fact]
    public void ChangedSourceOrSizeGetsItsOwnCache()
    {
        using (Open()) { }
        using (Open(imageSize: 12)) { }
        Assert.Equal(2, Directory.GetFiles(cache.Path, "*.bin").Length);
        // Rewriting an image changes the key (size and mtime): a third cache file.
        var img = Path.Combine(Mini, "images", $"{MiniImageNetBuilder.TrainLabels[0]}00000001.jpg");
        File.WriteAllBytes(img, MiniImageNetBuilder.Solid(1, 2, 3, 20, 20));
        File.SetLastWriteTimeUtc(img, DateTime.UtcNow.AddMinutes(1));
        using (var f = Open()) Assert.InRange(f.Store.Image(0, 0)[0], (byte)0, (byte)4);
        Assert.Equal(3, Directory.GetFiles(cache.Path, "*.bin").Length);
    }

    [Fact]
    public void PreparationDoesNotDependOnParallelDegreeOrTorchThreads()
    {
        // Another serial test may change Torch.Threads; the result must not care.
        byte[] a, b;
        using (var f = (ImageTaskFamily)TaskFamilies.Open(MiniImageNetBuilder.Config(root), null, 1, new DataOptions { UseCache = false, MaxDegreeOfParallelism = 1 }))
            a = f.Store.Pixels.ToArray();
        using (var f = (ImageTaskFamily)TaskFamilies.Open(MiniImageNetBuilder.Config(root), null, 1, new DataOptions { UseCache = false, MaxDegreeOfParallelism = 4 }))
            b = f.Store.Pixels.ToArray();
        Assert.Equal(a, b);
        Assert.Empty(Directory.GetFiles(cache.Path));
    }

    [Fact]
    public void MissingDataRootIsNamed()
    {
        var missing = dir.Sub("nowhere");
        var e = Assert.Throws<DataException>(() => TaskFamilies.Open(MiniImageNetBuilder.Config(missing), null, 1, Options()));
        Assert.Contains(missing, e.Message);
        Assert.Contains("does not exist", e.Message);
        Assert.Equal(ExitCodes.DataProblem, e.ExitCode);
    }

    [Fact]
    public void MissingDatasetFolderIsNamed()
    {
        var empty = dir.Sub("empty-root");
        Directory.CreateDirectory(empty);
        var e = Assert.Throws<DataException>(() => TaskFamilies.Open(MiniImageNetBuilder.Config(empty), null, 1, Options()));
        Assert.Contains(Path.Combine(empty, "miniimagenet"), e.Message);
    }

    [Fact]
    public void MissingCsvIsNamed()
    {
        File.Delete(Path.Combine(Mini, "val.csv"));
        var e = Assert.Throws<DataException>(() => Open());
        Assert.Contains("val.csv", e.Message);
    }

    [Fact]
    public void BadHeaderIsNamed()
    {
        var csv = Path.Combine(Mini, "test.csv");
        File.WriteAllLines(csv, ["file,class", .. File.ReadAllLines(csv).Skip(1)]);
        var e = Assert.Throws<DataException>(() => Open());
        Assert.Contains("test.csv:1", e.Message);
        Assert.Contains("filename,label", e.Message);
    }

    [Fact]
    public void CsvRowNamingAMissingImageIsNamed()
    {
        var csv = Path.Combine(Mini, "train.csv");
        File.AppendAllLines(csv, ["n99999999.jpg,n01532829"]);
        var e = Assert.Throws<DataException>(() => Open());
        Assert.Contains("train.csv:20", e.Message);
        Assert.Contains("n99999999.jpg", e.Message);
    }

    [Fact]
    public void JpegThatDoesNotDecodeIsNamed()
    {
        var img = Path.Combine(Mini, "images", $"{MiniImageNetBuilder.ValLabels[1]}00000003.jpg");
        var bytes = File.ReadAllBytes(img);
        File.WriteAllBytes(img, bytes[..40]); // a JPEG header and nothing after it
        var e = Assert.Throws<DataException>(() => Open());
        Assert.Contains(img, e.Message);
        Assert.Contains("JPEG", e.Message);
    }

    [Fact]
    public void PngThatDoesNotDecodeIsNamed()
    {
        var png = Path.Combine(Mini, "images", "broken.png");
        File.WriteAllBytes(png, [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, (byte)'I', (byte)'H', (byte)'D', (byte)'R', 1, 2, 3]);
        File.AppendAllLines(Path.Combine(Mini, "test.csv"), ["broken.png,n01930112"]);
        var e = Assert.Throws<DataException>(() => Open());
        Assert.Contains(png, e.Message);
        Assert.Contains("PNG", e.Message);
    }

    [Fact]
    public void NotAnImageIsNamed()
    {
        var img = Path.Combine(Mini, "images", $"{MiniImageNetBuilder.TrainLabels[2]}00000002.jpg");
        File.WriteAllText(img, "this is not an image");
        var e = Assert.Throws<DataException>(() => Open());
        Assert.Contains(img, e.Message);
    }

    [Fact]
    public void ClassWithTooFewImagesIsNamed()
    {
        var csv = Path.Combine(Mini, "train.csv");
        // n01704323 keeps 2 of its 6 images.
        var lines = File.ReadAllLines(csv).Where(l => !l.StartsWith("n01704323", StringComparison.Ordinal) || l.Contains("0000000" + "1") || l.Contains("0000000" + "2")).ToArray();
        File.WriteAllLines(csv, lines);
        using var f = Open();
        using (f.Sample(Split.Train, 0, 2, new EpisodeShape(3, 1, 1))) { }
        var e = Assert.Throws<DataException>(() => f.Sample(Split.Train, 0, 2, new EpisodeShape(3, 1, 2)));
        Assert.Contains("train/n01704323", e.Message);
        Assert.Contains("has 2 images", e.Message);
        Assert.Contains("need 3", e.Message);
    }

    [Fact]
    public void TooManyWaysIsNamed()
    {
        using var f = Open();
        var e = Assert.Throws<DataException>(() => f.Sample(Split.Val, 0, 1, new EpisodeShape(3, 1, 1)));
        Assert.Contains("val split has 2 classes", e.Message);
    }

    [Fact]
    public void VerifyReportsTheRaviCounts()
    {
        var output = new StringWriter();
        var code = MetaRun.Cli.Commands.DataCommand.Verify("miniimagenet", root, output);
        Assert.Equal(ExitCodes.DataProblem, code);
        var text = output.ToString();
        Assert.Contains("train.csv: 3 / 64 classes", text);
        Assert.Contains("class n01532829 has 6 images, expected 600", text);
        Assert.Contains("images that decode: 42 / 42", text);
    }

    [Fact]
    public void VerifyNamesAMissingImage()
    {
        var img = Path.Combine(Mini, "images", $"{MiniImageNetBuilder.TestLabels[0]}00000004.jpg");
        File.Delete(img);
        var report = DataVerifier.MiniImageNet(Mini);
        Assert.Contains(report.Problems, p => p.StartsWith($"missing: {img}", StringComparison.Ordinal) && p.Contains("test.csv:5"));
    }

    [Theory]
    [InlineData("  train: {ways: 4}\n", "data.train.ways", ":6:", "3 classes")]
    [InlineData("  train: {ways: 2, queries: 2}\n  test: {ways: 2, shots: 3, queries: 4}\n", "data.test.queries", ":7:", "has 6 images")]
    public void EpisodesBeyondTheCsvSplitsExitTwoNamingTheKey(string tail, string key, string line, string says)
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
}
