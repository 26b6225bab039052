using LibTorch;

namespace MetaRun.Data;

/// <summary>
/// Draws one episode as a picture: one row per class (label 0 at the top), its support images,
/// a gap, then its query images; 2-pixel gray borders. Pixels are mapped back from the model's
/// floats to bytes with the family's normalization, so the picture shows exactly what the
/// model is fed (Omniglot: white strokes on black).
/// </summary>
public static class EpisodeGrid
{
    public const int Border = 2;
    public const byte Background = 128;

    /// <summary>A uint8 image [C, H, W] of the first episode in <paramref name="batch"/>.</summary>
    public static Tensor Render(ImageTaskFamily family, MetaBatch batch, EpisodeShape shape)
    {
        var c = family.Store.Channels;
        var s = family.Store.Height;
        int n = shape.Ways, k = shape.Shots, q = shape.Queries;
        var gap = Math.Max(s / 2, 4);
        var cell = s + Border;
        var width = Border + k * cell + gap + q * cell;
        var height = Border + n * cell;
        var canvas = new byte[c * height * width];
        Array.Fill(canvas, Background);
        var support = batch.SupportX.ToArray<float>();
        var query = batch.QueryX.ToArray<float>();
        var pix = c * s * s;
        for (var j = 0; j < n; j++)
        {
            var y0 = Border + j * cell;
            for (var i = 0; i < k; i++) Blit(support.AsSpan((j * k + i) * pix, pix), Border + i * cell, y0);
            for (var i = 0; i < q; i++) Blit(query.AsSpan((j * q + i) * pix, pix), Border + k * cell + gap + i * cell, y0);
        }
        return Torch.From(canvas, c, height, width);

        void Blit(ReadOnlySpan<float> image, int x0, int y0)
        {
            for (var ch = 0; ch < c; ch++)
            {
                var scale = family.Scale[ch];
                var offset = family.Offset[ch];
                for (var y = 0; y < s; y++)
                for (var x = 0; x < s; x++)
                {
                    var v = (image[(ch * s + y) * s + x] - offset) / scale;
                    canvas[(ch * height + y0 + y) * width + x0 + x] = (byte)Math.Clamp(MathF.Round(v), 0, 255);
                }
            }
        }
    }
}
