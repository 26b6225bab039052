using LibTorch;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Tests.Data;


/// <summary>Tests in this collection change process-wide state (Torch.Threads, environment variables): xunit runs it alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DataSerialCollection
{
    public const string Name = "Data (serial: torch threads and environment)";
}

internal static class DataTestSupport
{
    public static DataConfig OmniglotConfig(string split = "vinyals", long splitSeed = 0, int imageSize = 0) => new()
    {
        Dataset = Dataset.Omniglot,
        Root = TestPaths.SharedDatasets,
        Split = Settings.Parse<OmniglotSplit>(split),
        SplitSeed = splitSeed,
        ImageSize = imageSize,
    };

    public static void AssertSameBatch(MetaBatch a, MetaBatch b)
    {
        Assert.Equal(a.SupportX.Shape, b.SupportX.Shape);
        Assert.Equal(a.QueryX.Shape, b.QueryX.Shape);
        Assert.Equal(a.SupportX.ToBytes(), b.SupportX.ToBytes());
        Assert.Equal(a.SupportY.ToBytes(), b.SupportY.ToBytes());
        Assert.Equal(a.QueryX.ToBytes(), b.QueryX.ToBytes());
        Assert.Equal(a.QueryY.ToBytes(), b.QueryY.ToBytes());
    }

    public static bool SameBatch(MetaBatch a, MetaBatch b) =>
        a.SupportX.ToBytes().AsSpan().SequenceEqual(b.SupportX.ToBytes()) && a.QueryX.ToBytes().AsSpan().SequenceEqual(b.QueryX.ToBytes()) &&
        a.SupportY.ToBytes().AsSpan().SequenceEqual(b.SupportY.ToBytes()) && a.QueryY.ToBytes().AsSpan().SequenceEqual(b.QueryY.ToBytes());
}

/// <summary>A temporary folder, deleted on disposal.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir(string? prefix = null)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"metarun-test-{prefix ?? "data"}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>
/// Writes a small miniImageNet in the real layout (images/*.jpg, train.csv, val.csv, test.csv with
/// "filename,label"): classes of flat-colored JPEGs with a class-specific color and a small
/// per-image variation, at mixed source sizes.
/// </summary>
internal static class MiniImageNetBuilder
{
    public static readonly string[] TrainLabels = ["n01532829", "n01558993", "n01704323"];
    public static readonly string[] ValLabels = ["n01855672", "n02091244"];
    public static readonly string[] TestLabels = ["n01930112", "n01981276"];
    public const int ImagesPerClass = 6;

    /// <summary>Creates &lt;root&gt;/miniimagenet and returns the data root.</summary>
    public static string Build(string root, int imagesPerClass = ImagesPerClass)
    {
        var dir = System.IO.Path.Combine(root, "miniimagenet");
        var images = System.IO.Path.Combine(dir, "images");
        Directory.CreateDirectory(images);
        var classIndex = 0;
        foreach (var (csv, labels) in new[] { ("train.csv", TrainLabels), ("val.csv", ValLabels), ("test.csv", TestLabels) })
        {
            var lines = new List<string> { "filename,label" };
            foreach (var label in labels)
            {
                for (var i = 0; i < imagesPerClass; i++)
                {
                    var file = $"{label}{i + 1:00000000}.jpg";
                    var (r, g, b) = ColorOf(classIndex, i);
                    // Two source sizes, so preparation resizes two groups.
                    var (h, w) = i % 2 == 0 ? (40, 48) : (32, 32);
                    File.WriteAllBytes(System.IO.Path.Combine(images, file), Solid(r, g, b, h, w));
                    lines.Add($"{file},{label}");
                }
                classIndex++;
            }
            File.WriteAllLines(System.IO.Path.Combine(dir, csv), lines);
        }
        return root;
    }

    public static (byte R, byte G, byte B) ColorOf(int classIndex, int image) =>
        ((byte)(40 + 25 * classIndex), (byte)(200 - 20 * classIndex), (byte)(60 + 10 * image));

    public static byte[] Solid(byte r, byte g, byte b, int h, int w)
    {
        var pixels = new byte[3 * h * w];
        pixels.AsSpan(0, h * w).Fill(r);
        pixels.AsSpan(h * w, h * w).Fill(g);
        pixels.AsSpan(2 * h * w, h * w).Fill(b);
        using var t = Torch.From(pixels, 3, h, w);
        return Image.EncodeJpeg(t, 95);
    }

    public static DataConfig Config(string root, int imageSize = 16, int ways = 2, int shots = 1, int queries = 2) => new()
    {
        Dataset = Dataset.MiniImageNet,
        Root = root,
        ImageSize = imageSize,
        Train = new EpisodeConfig { Ways = ways, Shots = shots, Queries = queries },
        Test = new EpisodeConfig { Ways = ways, Shots = shots, Queries = queries },
    };
}
