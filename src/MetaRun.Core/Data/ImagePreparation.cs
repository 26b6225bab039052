using System.Diagnostics;
using LibTorch;

namespace MetaRun.Data;

/// <summary>Encoded images to read, in store order; reading may be sequential (a zip) or parallel (files).</summary>
internal interface IEncodedImages : IDisposable
{
    int Count { get; }

    /// <summary>The image's name in messages: the file, or zip:entry.</summary>
    string NameOf(int index);

    /// <summary>Reads the encoded bytes of images start .. start + into.Length − 1.</summary>
    void Read(int start, byte[][] into, ParallelOptions parallel);
}

/// <summary>How raw images become store pixels.</summary>
internal readonly record struct Preprocessing(int Channels, int Size, bool Invert)
{
    /// <summary>The part of the cache key that names this preprocessing (bump the version when the pipeline changes).</summary>
    public string Key => $"prep=v2;channels={Channels};size={Size};invert={Invert};resize=bilinear-antialias;round=nearest";
}

/// <summary>
/// Decodes (libpng/libjpeg-turbo, in parallel over cores) and resizes (libtorch bilinear with
/// antialiasing, in batches of same-sized images) into an <see cref="ImageStore"/>.
/// </summary>
internal static class ImagePreparation
{
    // Images decoded per step: enough to keep every core busy, few enough that full-size RGB
    // photographs (up to ~0.5 MB decoded each) stay within a few hundred MB.
    /// <summary>
    /// Part of every image cache key: a cache made by a decoder that accepted what this one refuses
    /// (JPEGs cut short, decoded with gray in place of the lost part) is not served.
    /// </summary>
    public const string DecoderVersion = "decoder=2";

    private static int ChunkOf(Preprocessing prep) => prep.Channels == 1 ? 2048 : 512;

    public static ImageStore Prepare(IEncodedImages source, int[] classSizes, Preprocessing prep, DataOptions options, string what)
    {
        var store = new ImageStore(prep.Channels, prep.Size, prep.Size, classSizes);
        if (store.ImageCount != source.Count) throw new InvalidOperationException("class sizes do not add up to the image count");
        var parallel = options.Parallel;
        var clock = Stopwatch.StartNew();
        var lastLog = 0L;
        var readTime = new Stopwatch();
        var decodeTime = new Stopwatch();
        long resizeTicks = 0;
        // Chunk i is resized (libtorch, one thread) while chunk i + 1 is read and decoded (every core).
        Task? resizing = null;
        var chunk = ChunkOf(prep);
        try
        {
            for (var start = 0; start < source.Count; start += chunk)
            {
                var n = Math.Min(chunk, source.Count - start);
                var encoded = new byte[n][];
                var decoded = new byte[n][];
                var dims = new (int H, int W)[n];
                var errors = new string?[n];
                readTime.Start();
                source.Read(start, encoded, parallel);
                readTime.Stop();
                decodeTime.Start();
                Parallel.For(0, n, parallel, i =>
                {
                    try
                    {
                        using var t = Image.Decode(encoded[i], prep.Channels);
                        dims[i] = ((int)t.Size(1), (int)t.Size(2));
                        decoded[i] = t.ToBytes();
                    }
                    catch (TorchException e)
                    {
                        errors[i] = e.Message;
                    }
                    encoded[i] = null!;
                });
                decodeTime.Stop();
                for (var i = 0; i < n; i++)
                    if (errors[i] != null) throw new DataException($"{source.NameOf(start + i)}: {errors[i]}");
                resizing?.GetAwaiter().GetResult();
                var first = start;
                resizing = Task.Run(() =>
                {
                    var t0 = Stopwatch.GetTimestamp();
                    Resize(store, first, n, decoded, dims, prep);
                    Interlocked.Add(ref resizeTicks, Stopwatch.GetTimestamp() - t0);
                });
                if (options.Log != null && clock.ElapsedMilliseconds - lastLog > 2000)
                {
                    lastLog = clock.ElapsedMilliseconds;
                    options.Log($"{what}: decoded {start + n} of {source.Count} images");
                }
            }
            resizing?.GetAwaiter().GetResult();
        }
        finally
        {
            // Never leave a resize running into a store nobody will read after an error.
            try { resizing?.Wait(); } catch (AggregateException) { }
        }
        options.Log?.Invoke($"{what}: prepared {source.Count} images in {clock.Elapsed.TotalSeconds:F2} s (read {readTime.Elapsed.TotalSeconds:F2} s, decode {decodeTime.Elapsed.TotalSeconds:F2} s; resize {Stopwatch.GetElapsedTime(0, resizeTicks).TotalSeconds:F2} s alongside)");
        return store;
    }

    // Same-sized images go through libtorch together, in batches of a few dozen (small
    // tensors stay in cache): [n, C, h, w] uint8 → float → bilinear antialiased resize →
    // (255 − x when inverting) → round to nearest → uint8.
    private static void Resize(ImageStore store, int start, int n, byte[][] decoded, (int H, int W)[] dims, Preprocessing prep)
    {
        var groups = new Dictionary<(int H, int W), List<int>>();
        for (var i = 0; i < n; i++)
        {
            if (!groups.TryGetValue(dims[i], out var list)) groups[dims[i]] = list = [];
            list.Add(i);
        }
        var c = prep.Channels;
        foreach (var ((h, w), all) in groups)
        {
            if (h == prep.Size && w == prep.Size && !prep.Invert)
            {
                // Already the right size (miniImageNet's usual 84×84 files): the bytes are the result.
                foreach (var i in all) decoded[i].CopyTo(store.Image(start + i));
                continue;
            }
            var bytes = h * w * c;
            for (var b = 0; b < all.Count; b += ResizeBatchSize)
            {
                var members = all.GetRange(b, Math.Min(ResizeBatchSize, all.Count - b));
                var input = GC.AllocateUninitializedArray<byte>(checked(members.Count * bytes));
                for (var j = 0; j < members.Count; j++) decoded[members[j]].CopyTo(input, j * bytes);
                var output = ResizeBatch(input, members.Count, c, h, w, prep.Size, prep.Invert);
                for (var j = 0; j < members.Count; j++)
                    output.AsSpan(j * store.ImageBytes, store.ImageBytes).CopyTo(store.Image(start + members[j]));
            }
        }
    }

    private const int ResizeBatchSize = 64;

    /// <summary>Resizes n uint8 images [n, c, h, w] to [n, c, size, size] uint8 as the store holds them.</summary>
    public static byte[] ResizeBatch(byte[] input, int n, int c, int h, int w, int size, bool invert)
    {
        using var scope = Torch.NewScope();
        var x = Torch.From<byte>(input, n, c, h, w).To(ScalarType.Float32);
        if (h != size || w != size) x = F.Interpolate(x, size, size, InterpolationMode.Bilinear, antialias: true);
        // Inverting after the resize is the same as before it (the filter's weights sum to 1)
        // and touches 14× fewer values at 105 → 28.
        if (invert) x = 255.0 - x;
        var y = (x + 0.5).Floor().Clamp(0, 255).To(ScalarType.UInt8);
        return y.ToArray<byte>();
    }
}
