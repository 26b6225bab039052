using System.Runtime.InteropServices;
using static LibTorch.Native;

namespace LibTorch;

/// <summary>PNG and JPEG through libpng and libjpeg-turbo (native/src/image.cpp).</summary>
public static unsafe class Image
{
    /// <summary>Decodes a PNG (any colour type and bit depth) or JPEG (gray, YCbCr or CMYK) into a uint8 tensor [channels, height, width], channels 1 (gray) or 3 (RGB).</summary>
    public static Tensor Decode(ReadOnlySpan<byte> encoded, int channels)
    {
        fixed (byte* p = encoded) return new Tensor(mr_image_decode(p, encoded.Length, channels));
    }

    public static byte[] EncodePng(Tensor image) => Encode(image, ImageEncoding.Png, 0);

    public static byte[] EncodeJpeg(Tensor image, int quality = 95) => Encode(image, ImageEncoding.Jpeg, quality);

    /// <summary>An RGB image as an Adobe-style CMYK JPEG (inverted ink), as print workflows write them; Decode reads it back as RGB or gray.</summary>
    public static byte[] EncodeCmykJpeg(Tensor image, int quality = 95) => Encode(image, ImageEncoding.CmykJpeg, quality);

    /// <summary>A progressive JPEG (as browsers and photo sites often serve), which decodes in several passes.</summary>
    public static byte[] EncodeProgressiveJpeg(Tensor image, int quality = 95) => Encode(image, ImageEncoding.ProgressiveJpeg, quality);

    private static byte[] Encode(Tensor image, ImageEncoding format, int quality)
    {
        NativeEnums.EnsureVerified();
        var n = Check(mr_image_encode(image.Handle, (int)format, quality, out var buffer));
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
