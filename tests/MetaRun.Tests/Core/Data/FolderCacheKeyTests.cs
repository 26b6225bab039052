using LibTorch;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Tests.Evaluation;

namespace MetaRun.Tests.Data;

/// <summary>
/// The folder data set's decoded-image cache: an image replaced by another of the same size with
/// its modification time restored (touch -r) is decoded again, not served from the cache.
/// </summary>
[Collection(DataSerialCollection.Name)]
public sealed class FolderCacheKeyTests : IDisposable
{
    private readonly SmallImageRun fixture = new("cachekey");

    public void Dispose() => fixture.Dispose();

    private ImageStore Load()
    {
        var config = new DataConfig { Dataset = MetaRun.Config.Dataset.Folder, Root = fixture.Root, ImageSize = 16 };
        var classes = FolderDataset.ReadLayout(fixture.Root, config);
        return FolderDataset.LoadStore(fixture.Root, classes, ImageFormat.For(config), new DataOptions());
    }

    private static byte[] Solid(byte value)
    {
        var px = new byte[3 * 16 * 16];
        Array.Fill(px, value);
        using var t = Torch.From<byte>(px, 3, 16, 16);
        return Image.EncodePng(t);
    }

    [Fact]
    public void AnImageReplacedWithTheSameSizeAndTimeIsDecodedAgain()
    {
        var victim = Directory.GetFiles(Path.Combine(fixture.Root, "train", "c0")).Order(StringComparer.Ordinal).First();
        // Two flat images of one size: the same length once compressed, different pixels.
        var (dark, light) = (Solid(20), Solid(230));
        Assert.Equal(dark.Length, light.Length);
        File.WriteAllBytes(victim, dark);
        var first = Load().Pixels.ToArray();
        Assert.Equal(first, Load().Pixels.ToArray()); // the cache serves the same

        var when = File.GetLastWriteTimeUtc(victim);
        File.WriteAllBytes(victim, light);
        File.SetLastWriteTimeUtc(victim, when);

        Assert.NotEqual(first, Load().Pixels.ToArray());
    }
}
