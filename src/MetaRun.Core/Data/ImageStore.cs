using System.Buffers.Binary;
using System.Text;

namespace MetaRun.Data;

/// <summary>
/// Decoded, resized images as one uint8 array [images, C, H, W] in managed memory, grouped by
/// source class: class c holds images ClassStart[c] .. ClassStart[c] + ClassSize[c] − 1.
/// </summary>
public sealed class ImageStore
{
    public ImageStore(int channels, int height, int width, int[] classSizes, byte[]? pixels = null)
    {
        Channels = channels;
        Height = height;
        Width = width;
        ClassSizes = classSizes;
        ClassStart = new int[classSizes.Length];
        var n = 0L;
        for (var c = 0; c < classSizes.Length; c++)
        {
            ClassStart[c] = (int)n;
            n += classSizes[c];
        }
        ImageCount = (int)n;
        var bytes = n * ImageBytes;
        if (bytes > Array.MaxLength)
            throw new DataException($"{n} images of {channels}×{height}×{width} need {bytes / (1 << 20)} MiB, more than one array can hold; use a smaller data.image_size");
        if (pixels != null && pixels.LongLength != bytes) throw new ArgumentException("pixel buffer has the wrong size");
        Pixels = pixels ?? GC.AllocateUninitializedArray<byte>((int)bytes);
    }

    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public int ImageBytes => Channels * Height * Width;
    public int ImageCount { get; }
    public int[] ClassSizes { get; }
    public int[] ClassStart { get; }
    public int ClassCount => ClassSizes.Length;
    public byte[] Pixels { get; }

    public Span<byte> Image(int index) => Pixels.AsSpan(index * ImageBytes, ImageBytes);
    public Span<byte> Image(int cls, int k) => Image(ClassStart[cls] + k);
}

/// <summary>
/// The decoded-image cache: one file per (data set, source files, preprocessing) holding an
/// <see cref="ImageStore"/>. Its header carries the full key and an XXH64 checksum of itself and
/// of the pixels; anything that does not match is reported and the cache rebuilt, never trusted.
/// Files are written to a temporary name and renamed into place, so a reader sees a whole file or none.
/// </summary>
public static class ImageCache
{
    public const string EnvironmentVariable = "METARUN_CACHE_DIR";
    private static readonly byte[] Magic = "MRIMGC\0\u0001"u8.ToArray();
    private const int FormatVersion = 1;

    /// <summary>The cache folder: DataOptions.CacheDir, else $METARUN_CACHE_DIR, else ~/.cache/metarun.</summary>
    public static string ResolveDir(DataOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.CacheDir)) return DataRoot.Expand(options.CacheDir);
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env)) return DataRoot.Expand(env);
        return Path.Combine(DataRoot.Home(), ".cache", "metarun");
    }

    /// <summary>The cache file of one key: &lt;dir&gt;/&lt;dataset&gt;-&lt;size&gt;px-&lt;hash of key&gt;.bin.</summary>
    public static string PathFor(string dir, string dataset, int size, string key) =>
        Path.Combine(dir, $"{dataset}-{size}px-{XxHash64.Hash(key):x16}.bin");

    /// <summary>
    /// The store in <paramref name="path"/> when it exists and is whole and current; otherwise
    /// null, after logging why (a missing file is not worth a message).
    /// </summary>
    public static ImageStore? TryLoad(string path, string key, int channels, int height, int width, int[] classSizes, Action<string>? log)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            var header = ReadHeader(f, out var payloadLength, out var payloadHash, out var problem);
            if (header == null) return Stale(path, problem!, log);
            var (hkey, c, h, w, sizes) = header.Value;
            if (hkey != key) return Stale(path, "it was built from other files or settings", log);
            if (c != channels || h != height || w != width || !sizes.AsSpan().SequenceEqual(classSizes))
                return Stale(path, "its image shape or class sizes differ", log);
            var store = new ImageStore(c, h, w, sizes);
            if (payloadLength != store.Pixels.LongLength || f.Length - f.Position != payloadLength)
                return Stale(path, $"its payload is {f.Length - f.Position} bytes, expected {store.Pixels.LongLength}", log);
            f.ReadExactly(store.Pixels);
            if (XxHash64.Hash(store.Pixels) != payloadHash) return Stale(path, "its checksum does not match (corrupt)", log);
            return store;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or EndOfStreamException)
        {
            return Stale(path, $"it cannot be read ({e.Message})", log);
        }
    }

    private static ImageStore? Stale(string path, string why, Action<string>? log)
    {
        log?.Invoke($"cache {path} is not usable: {why}; rebuilding it");
        return null;
    }

    private static (string Key, int C, int H, int W, int[] Sizes)? ReadHeader(Stream f, out long payloadLength, out ulong payloadHash, out string? problem)
    {
        payloadLength = 0;
        payloadHash = 0;
        problem = null;
        var start = new byte[Magic.Length + 8];
        if (f.ReadAtLeast(start, start.Length, throwOnEndOfStream: false) < start.Length || !start.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            problem = "it is not a MetaRun image cache";
            return null;
        }
        var version = BinaryPrimitives.ReadInt32LittleEndian(start.AsSpan(Magic.Length));
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(start.AsSpan(Magic.Length + 4));
        if (version != FormatVersion) { problem = $"it has format version {version}, expected {FormatVersion}"; return null; }
        if (headerLength < 48 || headerLength > 64 << 20 || headerLength > f.Length) { problem = "its header is damaged"; return null; }
        var header = new byte[headerLength];
        start.CopyTo(header, 0);
        if (f.ReadAtLeast(header.AsSpan(start.Length), headerLength - start.Length, throwOnEndOfStream: false) < headerLength - start.Length)
        {
            problem = "it is truncated";
            return null;
        }
        var body = header.AsSpan(0, headerLength - 8);
        if (XxHash64.Hash(body) != BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(headerLength - 8)))
        {
            problem = "its header checksum does not match (corrupt)";
            return null;
        }
        var p = start.Length;
        int I32() { var v = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(p)); p += 4; return v; }
        var keyLength = I32();
        var key = Encoding.UTF8.GetString(header, p, keyLength);
        p += keyLength;
        int c = I32(), h = I32(), w = I32(), classes = I32();
        var sizes = new int[classes];
        for (var i = 0; i < classes; i++) sizes[i] = I32();
        payloadLength = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(p));
        payloadHash = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(p + 8));
        return (key, c, h, w, sizes);
    }

    /// <summary>Writes the store atomically (temporary file, then rename). Failure is logged, not thrown: the cache is an optimization.</summary>
    public static bool TrySave(string path, string key, ImageStore store, Action<string>? log)
    {
        var dir = Path.GetDirectoryName(path)!;
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(dir);
            var keyBytes = Encoding.UTF8.GetBytes(key);
            var headerLength = Magic.Length + 4 + 4 + 4 + keyBytes.Length + 16 + 4 * store.ClassCount + 8 + 8 + 8;
            var header = new byte[headerLength];
            var p = 0;
            Magic.CopyTo(header, 0);
            p += Magic.Length;
            void I32(int v) { BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(p), v); p += 4; }
            I32(FormatVersion);
            I32(headerLength);
            I32(keyBytes.Length);
            keyBytes.CopyTo(header, p);
            p += keyBytes.Length;
            I32(store.Channels);
            I32(store.Height);
            I32(store.Width);
            I32(store.ClassCount);
            foreach (var s in store.ClassSizes) I32(s);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(p), store.Pixels.LongLength);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(p + 8), XxHash64.Hash(store.Pixels));
            p += 16;
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(p), XxHash64.Hash(header.AsSpan(0, p)));
            using (var f = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                f.Write(header);
                f.Write(store.Pixels);
                f.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
            log?.Invoke($"cache written: {path} ({(header.Length + store.Pixels.LongLength) / (1 << 20)} MiB)");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log?.Invoke($"cache not written ({e.Message}); the data will be decoded again next time");
            try { File.Delete(tmp); } catch (Exception) { /* best effort */ }
            return false;
        }
    }
}
