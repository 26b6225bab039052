using System.Runtime.InteropServices;
using static LibTorch.Native;

namespace LibTorch;

/// <summary>PNG and JPEG through libpng and libjpeg-turbo (native/src/image.cpp).</summary>
public static unsafe class Image
{
    /// <summary>Decodes a PNG or JPEG into a uint8 tensor [channels, height, width], channels 1 (gray) or 3 (RGB).</summary>
    public static Tensor Decode(ReadOnlySpan<byte> encoded, int channels)
    {
        fixed (byte* p = encoded) return new Tensor(mr_image_decode(p, encoded.Length, channels));
    }

    public static byte[] EncodePng(Tensor image) => Encode(image, 0, 0);

    public static byte[] EncodeJpeg(Tensor image, int quality = 95) => Encode(image, 1, quality);

    private static byte[] Encode(Tensor image, int format, int quality)
    {
        var n = Check(mr_image_encode(image.Handle, format, quality, out var buffer));
        try
        {
            var bytes = new byte[n];
            Marshal.Copy(buffer, bytes, 0, (int)n);
            return bytes;
        }
        finally
        {
            mr_buffer_free(buffer);
        }
    }
}
