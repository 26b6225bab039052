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

    /// <summary>
    /// The episode as a PNG for people: each image enlarged to at least 64 pixels (whole-pixel
    /// steps, so pixels stay sharp), a row label with the class's name on the left and
    /// "support" / "query" above. SkiaSharp (already under the plots) draws the text.
    /// </summary>
    public static byte[] RenderPng(ImageTaskFamily family, MetaBatch batch, EpisodeShape shape, IReadOnlyList<string> classNames)
    {
        using var scope = Torch.NewScope();
        var grid = Render(family, batch, shape);
        int c = (int)grid.Size(0), h = (int)grid.Size(1), w = (int)grid.Size(2);
        var pixels = grid.ToArray<byte>();
        var s = family.Store.Height;
        var factor = Math.Max(1, (64 + s - 1) / s);
        using var font = new SkiaSharp.SKFont(SkiaSharp.SKTypeface.Default, 14);
        using var paint = new SkiaSharp.SKPaint { Color = SkiaSharp.SKColors.Black, IsAntialias = true };
        var labels = classNames.Select((n, j) => $"{j}: {n}").ToList();
        var left = (int)Math.Ceiling(labels.Select(l => font.MeasureText(l)).DefaultIfEmpty(0).Max()) + 12;
        const int top = 24;
        using var bitmap = new SkiaSharp.SKBitmap(left + w * factor, top + h * factor);
        using (var canvas = new SkiaSharp.SKCanvas(bitmap))
        {
            canvas.Clear(SkiaSharp.SKColors.White);
            for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
            {
                byte P(int ch) => pixels[(Math.Min(ch, c - 1) * h + y) * w + x];
                using var fill = new SkiaSharp.SKPaint { Color = new SkiaSharp.SKColor(P(0), P(1), P(2)) };
                canvas.DrawRect(left + x * factor, top + y * factor, factor, factor, fill);
            }
            var cell = s + Border;
            var queryX = Border + shape.Shots * cell + Math.Max(s / 2, 4);
            canvas.DrawText("support", left + Border * factor, top - 7, font, paint);
            canvas.DrawText("query", left + queryX * factor, top - 7, font, paint);
            for (var j = 0; j < labels.Count; j++)
                canvas.DrawText(labels[j], 4, top + (Border + j * cell + s / 2f) * factor + 5, font, paint);
        }
        using var image = SkiaSharp.SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
