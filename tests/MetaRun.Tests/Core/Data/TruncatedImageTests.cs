using LibTorch;
using MetaRun.Tests.Cli;
using MetaRun.Tests.Evaluation;

namespace MetaRun.Tests.Data;

/// <summary>
/// A JPEG cut short (a truncated download), baseline or progressive, is a data error naming the
/// file (exit 3), in training and in adapt's support images, never an image with its missing
/// part filled in gray.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class TruncatedImageTests : IDisposable
{
    private readonly SmallImageRun fixture = new("truncated");

    public void Dispose() => fixture.Dispose();

    private static Tensor Noise(int seed)
    {
        var px = new byte[3 * 64 * 64];
        new Random(seed).NextBytes(px);
        return Torch.From<byte>(px, 3, 64, 64);
    }

    public static TheoryData<bool> Kinds => new() { false, true };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ATruncatedJpegDoesNotDecode(bool progressive)
    {
        using var image = Noise(1);
        var whole = progressive ? Image.EncodeProgressiveJpeg(image) : Image.EncodeJpeg(image);
        using (var ok = Image.Decode(whole, 3)) Assert.Equal([3L, 64, 64], ok.Shape);
        var cut = whole[..(whole.Length * 3 / 5)];
        var e = Assert.Throws<TorchException>(() => Image.Decode(cut, 3));
        Assert.Contains("Premature end of JPEG file", e.Message);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void TrainingAndAdaptationRefuseATruncatedJpegNamingIt(bool progressive)
    {
        using var image = Noise(2);
        var whole = progressive ? Image.EncodeProgressiveJpeg(image) : Image.EncodeJpeg(image);
        var bad = Path.Combine(fixture.Root, "train", "c1", "download.jpg");
        File.WriteAllBytes(bad, whole[..(whole.Length / 2)]);
        var (code, _, err) = CliRunner.Run("train", fixture.Config(), "--out", Path.Combine(fixture.Dir, "run-bad"));
        Assert.True(code == 3, err);
        Assert.Contains("download.jpg", err);
        File.Delete(bad);

        var run = fixture.Train();
        var (support, query) = fixture.SupportAndQuery();
        var badSupport = Path.Combine(support, Directory.GetDirectories(support)[0], "cut.jpg");
        File.WriteAllBytes(badSupport, whole[..(whole.Length / 2)]);
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", Path.Combine(fixture.Dir, "p.csv"));
        Assert.True(code == 3, err);
        Assert.Contains("cut.jpg", err);
    }
}
