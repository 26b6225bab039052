using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>
/// How a data set's files become model inputs: the decode-and-resize preprocessing of the store,
/// then per channel float = byte × Scale + Offset. A checkpoint's data config fixes it, so
/// `adapt` feeds new images exactly as training and evaluation fed the data set's.
/// </summary>
public sealed record ImageFormat(int Channels, int Size, bool Invert, float[] Scale, float[] Offset)
{
    internal Preprocessing Prep => new(Channels, Size, Invert);

    public long[] InputShape => [Channels, Size, Size];

    /// <summary>The format of an image data set's config; a ConfigException for sinusoid.</summary>
    public static ImageFormat For(DataConfig data) => data.Dataset switch
    {
        Dataset.Omniglot => Omniglot(data.ImageSize),
        Dataset.MiniImageNet => MiniImageNet(data.ImageSize),
        Dataset.Folder => Folder(data.Channels, data.ImageSize),
        _ => throw new ConfigException($"data.dataset: {data.Dataset.Yaml()} has no images"),
    };

    /// <summary>Gray, inverted so strokes are 1 and background 0 (the byte is the value × 255).</summary>
    public static ImageFormat Omniglot(int size) =>
        new(1, size > 0 ? size : Data.Omniglot.DefaultImageSize, true, [1f / 255f], [0f]);

    /// <summary>RGB standardized with the miniImageNet training-set mean and standard deviation.</summary>
    public static ImageFormat MiniImageNet(int size) =>
        // (byte / 255 − mean) / std = byte × (1 / (255 std)) − mean / std
        new(3, size > 0 ? size : Data.MiniImageNet.DefaultImageSize, false,
            [.. Data.MiniImageNet.Std.Select(s => 1f / (255f * s))], [.. Data.MiniImageNet.Mean.Select((m, c) => -m / Data.MiniImageNet.Std[c])]);

    /// <summary>
    /// Someone's own images: RGB unless data.channels is 1, values byte / 255. No data-set
    /// statistics: they would have to be measured on the training folder and carried with every
    /// checkpoint, and batch normalization after the first convolution absorbs the offset anyway.
    /// </summary>
    public static ImageFormat Folder(int channels, int size)
    {
        var c = channels == 0 ? 3 : channels;
        return new(c, size > 0 ? size : FolderDataset.DefaultImageSize, false, [.. Enumerable.Repeat(1f / 255f, c)], new float[c]);
    }

    /// <summary>The float inputs [n, C, H, W] of a store's images start .. start + n − 1.</summary>
    public float[] ToFloats(ImageStore store, int start, int n)
    {
        var pix = store.ImageBytes;
        var plane = store.Height * store.Width;
        var x = new float[(long)n * pix];
        for (var i = 0; i < n; i++)
        {
            var src = store.Image(start + i);
            for (var c = 0; c < Channels; c++)
                ImageTaskFamily.ToFloat(src.Slice(c * plane, plane), x.AsSpan(i * pix + c * plane, plane), Scale[c], Offset[c]);
        }
        return x;
    }
}
