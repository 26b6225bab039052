using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using LibTorch;

namespace MetaRun.Tests.LibTorch;

/// <summary>PNG and JPEG encoding and decoding through libpng and libjpeg.</summary>
public sealed class ImageTests
{
    [Theory]
    [InlineData(1, 17, 23)]
    [InlineData(3, 9, 31)]
    [InlineData(3, 1, 1)]
    public void PngRoundTripIsExact(int channels, int height, int width)
    {
        using var scope = Torch.NewScope();
        using var gen = new Generator((ulong)(channels * 1000 + height));
        var image = Torch.RandInt(0, 256, [channels, height, width], ScalarType.UInt8, generator: gen);
        var png = Image.EncodePng(image);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        var decoded = Image.Decode(png, channels);
        Assert.Equal(ScalarType.UInt8, decoded.DType);
        Assert.Equal([(long)channels, height, width], decoded.Shape);
        Assert.Equal(image.ToArray<byte>(), decoded.ToArray<byte>());
    }

    [Fact]
    public void PngChannelConversionReplicatesGrayAndAveragesEqualRgb()
    {
        using var scope = Torch.NewScope();
        using var gen = new Generator(8);
        var gray = Torch.RandInt(0, 256, [1, 5, 6], ScalarType.UInt8, generator: gen);
        var asRgb = Image.Decode(Image.EncodePng(gray), 3);
        Assert.Equal([3L, 5, 6], asRgb.Shape);
        for (var c = 0; c < 3; c++) Assert.Equal(gray[0].ToArray<byte>(), asRgb[c].ToArray<byte>());
        // An RGB image whose three channels are equal converts back to that gray exactly.
        var back = Image.Decode(Image.EncodePng(asRgb), 1);
        Assert.Equal(gray.ToArray<byte>(), back.ToArray<byte>());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void JpegRoundTripIsClose(int channels)
    {
        using var scope = Torch.NewScope();
        // A smooth image (JPEG's domain): gradients plus a gentle pattern, values 30..200 (no byte wrap-around).
        const int h = 32, w = 40;
        var pixels = new byte[channels * h * w];
        for (var c = 0; c < channels; c++)
        for (var y = 0; y < h; y++)
        for (var x = 0; x < w; x++)
            pixels[(c * h + y) * w + x] = (byte)(40 + 2 * x + y + 20 * c + 10 * Math.Sin((x + y) / 5.0));
        var image = Torch.From(pixels, channels, h, w);
        var jpeg = Image.EncodeJpeg(image, 95);
        Assert.Equal([0xFF, 0xD8, 0xFF], jpeg[..3]);
        var decoded = Image.Decode(jpeg, channels);
        Assert.Equal([(long)channels, h, w], decoded.Shape);
        var back = decoded.ToArray<byte>();
        var meanAbsError = pixels.Zip(back).Average(p => Math.Abs(p.First - p.Second));
        Assert.True(meanAbsError < 2.0, $"mean absolute error {meanAbsError}");
        Assert.True(pixels.Zip(back).Max(p => Math.Abs(p.First - p.Second)) < 24);
        // Lower quality is smaller.
        Assert.True(Image.EncodeJpeg(image, 20).Length < jpeg.Length);
    }

    [Fact]
    public void JpegDecodesToTheRequestedChannelCount()
    {
        using var scope = Torch.NewScope();
        var gray = Torch.Full([1, 16, 16], 100, ScalarType.UInt8);
        var rgb = Image.Decode(Image.EncodeJpeg(gray), 3);
        Assert.Equal([3L, 16, 16], rgb.Shape);
        Assert.All(rgb.ToArray<byte>(), v => Assert.InRange(v, (byte)98, (byte)102));
        var color = Torch.Cat([Torch.Full([1, 16, 16], 200, ScalarType.UInt8), Torch.Full([2, 16, 16], 50, ScalarType.UInt8)]);
        var asGray = Image.Decode(Image.EncodeJpeg(color), 1);
        Assert.Equal([1L, 16, 16], asGray.Shape);
        // Luma of (200, 50, 50): 0.299·200 + 0.587·50 + 0.114·50 ≈ 95.
        Assert.All(asGray.ToArray<byte>(), v => Assert.InRange(v, (byte)90, (byte)100));
    }

    /// <summary>A PNG assembled from the specification: signature, IHDR, one zlib IDAT of filter-0 rows, IEND.</summary>
    private static byte[] HandMadePng(int width, int height, byte colorType, int channels, byte[] pixels)
    {
        static uint Crc(ReadOnlySpan<byte> data)
        {
            var c = 0xFFFFFFFFu;
            foreach (var b in data)
            {
                c ^= b;
                for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            return c ^ 0xFFFFFFFFu;
        }
        var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        void Chunk(string type, byte[] body)
        {
            var len = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(len, (uint)body.Length);
            png.Write(len);
            var typed = Encoding.ASCII.GetBytes(type).Concat(body).ToArray();
            png.Write(typed);
            var crc = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, Crc(typed));
            png.Write(crc);
        }
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = 8;          // bit depth
        ihdr[9] = colorType;  // 0 gray, 2 RGB, 6 RGBA
        Chunk("IHDR", ihdr);
        var raw = new MemoryStream();
        for (var y = 0; y < height; y++)
        {
            raw.WriteByte(0); // filter: none
            raw.Write(pixels, y * width * channels, width * channels);
        }
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zs.Write(raw.ToArray());
        Chunk("IDAT", z.ToArray());
        Chunk("IEND", []);
        return png.ToArray();
    }

    [Fact]
    public void APngBuiltFromTheSpecificationDecodesToItsPixels()
    {
        using var scope = Torch.NewScope();
        // Gray 3 wide × 2 high.
        byte[] gray = [0, 10, 20, 200, 210, 255];
        var g = Image.Decode(HandMadePng(3, 2, 0, 1, gray), 1);
        Assert.Equal([1L, 2, 3], g.Shape);
        Assert.Equal(gray, g.ToArray<byte>());

        // RGB 2 wide × 2 high, interleaved in the file, planar [C, H, W] in the tensor.
        byte[] rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3];
        var c = Image.Decode(HandMadePng(2, 2, 2, 3, rgb), 3);
        Assert.Equal([3L, 2, 2], c.Shape);
        Assert.Equal([255, 0, 0, 1, /* G */ 0, 255, 0, 2, /* B */ 0, 0, 255, 3], c.ToArray<byte>());

        // RGBA: the alpha channel is dropped.
        byte[] rgba = [9, 8, 7, 128, 6, 5, 4, 255];
        var a = Image.Decode(HandMadePng(2, 1, 6, 4, rgba), 3);
        Assert.Equal([3L, 1, 2], a.Shape);
        Assert.Equal([9, 6, 8, 5, 7, 4], a.ToArray<byte>());

        // A corrupted CRC is caught by libpng and reported, not ignored.
        var bad = HandMadePng(3, 2, 0, 1, gray);
        bad[8 + 8 + 13] ^= 0xFF; // inside IHDR's CRC
        Assert.Throws<TorchException>(() => Image.Decode(bad, 1));
    }

    public static TheoryData<string, byte[]> Garbage => new()
    {
        { "empty", [] },
        { "three bytes", [1, 2, 3] },
        { "random bytes", Enumerable.Range(0, 500).Select(i => (byte)(i * 37 % 251)).ToArray() },
        { "PNG signature then garbage", [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4, 5, 6, 7, 8, 9] },
        { "JPEG SOI then garbage", [0xFF, 0xD8, 0xFF, 0x00, 0x13, 0x37, 0x42, 0x42, 0x42, 0x42] },
        { "JPEG SOI only", [0xFF, 0xD8, 0xFF] },
        { "text", "definitely not an image"u8.ToArray() },
    };

    [Theory]
    [MemberData(nameof(Garbage))]
    public void DecodingGarbageThrowsTorchException(string what, byte[] bytes)
    {
        var e = Assert.Throws<TorchException>(() => Image.Decode(bytes, 3));
        Assert.False(string.IsNullOrWhiteSpace(e.Message), what);
        // The process is fine afterwards.
        using var scope = Torch.NewScope();
        Assert.Equal([1L, 2, 2], Image.Decode(Image.EncodePng(Torch.Zeros([1, 2, 2], ScalarType.UInt8)), 1).Shape);
    }

    [Theory]
    [InlineData(new byte[0], "empty file")]
    [InlineData(new byte[] { 0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0 }, "neither a PNG nor a JPEG")]
    [InlineData(new byte[] { 1, 2, 3 }, "neither a PNG nor a JPEG")]
    public void ANonImageIsNamedForWhatItIsNotAsABrokenPng(byte[] bytes, string expected)
    {
        var e = Assert.Throws<TorchException>(() => Image.Decode(bytes, 3));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain("not a PNG", e.Message);
    }

    [Fact]
    public void ATruncatedPngThrowsTorchException()
    {
        using var scope = Torch.NewScope();
        using var gen = new Generator(3);
        var png = Image.EncodePng(Torch.RandInt(0, 256, [3, 20, 20], ScalarType.UInt8, generator: gen));
        var e = Assert.Throws<TorchException>(() => Image.Decode(png[..(png.Length / 2)], 3));
        Assert.Contains("PNG", e.Message);
    }

    [Fact]
    public void BadArgumentsAreTorchExceptions()
    {
        using var scope = Torch.NewScope();
        Assert.Throws<TorchException>(() => Image.EncodePng(Torch.Zeros([2, 4, 4], ScalarType.UInt8)));   // 2 channels
        Assert.Throws<TorchException>(() => Image.EncodePng(Torch.Zeros([3, 4, 4])));                     // float32
        Assert.Throws<TorchException>(() => Image.EncodeJpeg(Torch.Zeros([4, 4], ScalarType.UInt8)));     // no channel dim
        var png = Image.EncodePng(Torch.Zeros([1, 2, 2], ScalarType.UInt8));
        Assert.Throws<TorchException>(() => Image.Decode(png, 2));
    }
}
