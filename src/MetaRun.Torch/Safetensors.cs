using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace LibTorch;

/// <summary>Named tensors and string metadata, as read from a safetensors file.</summary>
public sealed class TensorFile(Dictionary<string, Tensor> tensors, Dictionary<string, string> metadata) : IDisposable
{
    public IReadOnlyDictionary<string, Tensor> Tensors => tensors;
    public IReadOnlyDictionary<string, string> Metadata => metadata;

    public Tensor this[string name] =>
        tensors.TryGetValue(name, out var t) ? t : throw new InvalidDataException($"tensor '{name}' is not in the file");

    public void Dispose()
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}

/// <summary>
/// The safetensors format (an 8-byte little-endian header length, a JSON header, then raw
/// little-endian tensor data), so files open in Python's safetensors and the reverse.
/// </summary>
public static class Safetensors
{
    // Same bound as the reference implementation: a larger header is a corrupt or hostile file.
    private const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<string, ScalarType> DTypes = new()
    {
        ["BOOL"] = ScalarType.Bool,
        ["U8"] = ScalarType.UInt8,
        ["I32"] = ScalarType.Int32,
        ["I64"] = ScalarType.Int64,
        ["F32"] = ScalarType.Float32,
        ["F64"] = ScalarType.Float64,
    };

    private static readonly HashSet<string> KnownButUnsupported = ["I8", "I16", "U16", "U32", "U64", "F16", "BF16", "F8_E4M3", "F8_E5M2"];

    private static string Code(ScalarType t) => DTypes.First(kv => kv.Value == t).Key;

    public static byte[] Serialize(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        var blobs = names.Select(n => tensors[n].ToBytes()).ToArray();
        using var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            for (var i = 0; i < names.Length; i++)
            {
                var t = tensors[names[i]];
                w.WriteStartObject(names[i]);
                w.WriteString("dtype", Code(t.DType));
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + blobs[i].Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += blobs[i].Length;
            }
            w.WriteEndObject();
        }
        // The header is padded with spaces to a multiple of 8 so the data starts aligned.
        var header = json.ToArray();
        var padded = (header.Length + 7) / 8 * 8;
        var result = new byte[8 + padded + blobs.Sum(b => (long)b.Length)];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)padded);
        header.CopyTo(result, 8);
        result.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        var pos = 8 + padded;
        foreach (var b in blobs)
        {
            b.CopyTo(result, pos);
            pos += b.Length;
        }
        return result;
    }

    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        File.WriteAllBytes(path, Serialize(tensors, metadata));

    /// <summary>
    /// Reads and validates a file. The header is read and checked against the file's length
    /// before any tensor data is: a header promising more than the file holds, or a file that
    /// is not a regular one (a link to /dev/zero reports length 0), never gets a buffer
    /// allocated for it; nothing past the length is ever read.
    /// </summary>
    public static TensorFile Load(string path)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            if (!f.CanSeek) throw new InvalidDataException("not a regular file");
            var length = f.Length;
            if (length < 8) throw new InvalidDataException($"file is {length} bytes, shorter than the 8-byte header length{(length == 0 ? " (empty, or not a regular file)" : "")}");
            Span<byte> prefix = stackalloc byte[8];
            f.ReadExactly(prefix);
            var headerLength = CheckHeaderLength(BinaryPrimitives.ReadUInt64LittleEndian(prefix), length);
            var header = new byte[headerLength];
            f.ReadExactly(header);
            var dataLength = length - 8 - headerLength;
            var (entries, metadata) = ParseHeader(header, dataLength);
            if (dataLength > Array.MaxLength) throw new InvalidDataException($"tensor data of {dataLength} bytes is larger than MetaRun reads in one piece");
            var data = GC.AllocateUninitializedArray<byte>((int)dataLength);
            f.ReadExactly(data);
            return Build(entries, metadata, data);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{path}: not a valid safetensors file: it shrank while being read");
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: not a valid safetensors file: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot read: {e.Message}", e);
        }
    }

    /// <summary>Parses and validates a whole file held in memory; never reads outside it.</summary>
    public static TensorFile Deserialize(ReadOnlySpan<byte> file)
    {
        if (file.Length < 8) throw new InvalidDataException($"file is {file.Length} bytes, shorter than the 8-byte header length");
        var headerLength = CheckHeaderLength(BinaryPrimitives.ReadUInt64LittleEndian(file), file.Length);
        var data = file[(8 + (int)headerLength)..];
        var (entries, metadata) = ParseHeader(file.Slice(8, (int)headerLength), data.Length);
        return Build(entries, metadata, data);
    }

    private static long CheckHeaderLength(ulong headerLength, long fileLength)
    {
        if (headerLength > MaxHeaderBytes) throw new InvalidDataException($"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");
        if ((long)headerLength > fileLength - 8) throw new InvalidDataException($"header length {headerLength} runs past the end of the file ({fileLength} bytes)");
        return (long)headerLength;
    }

    private static (List<(string Name, ScalarType DType, long[] Shape, long Begin, long End)>, Dictionary<string, string>) ParseHeader(ReadOnlySpan<byte> header, long dataLength)
    {
        // Checked up front: System.Text.Json only validates UTF-8 when a string is read, and then
        // throws InvalidOperationException.
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw new InvalidDataException("header is not valid UTF-8");

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray());
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"header is not valid JSON: {e.Message}");
        }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException("header is not a JSON object");

        var metadata = new Dictionary<string, string>();
        var entries = new List<(string Name, ScalarType DType, long[] Shape, long Begin, long End)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (!names.Add(prop.Name)) throw new InvalidDataException($"'{prop.Name}' appears twice in the header");
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw new InvalidDataException("__metadata__ is not an object");
                foreach (var m in prop.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw new InvalidDataException($"metadata '{m.Name}' is not a string");
                continue;
            }
            entries.Add(ParseEntry(prop));
        }

        // Tensors must tile the data buffer exactly: no overlap, no hole, nothing past the end.
        long expected = 0;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin != expected)
                throw new InvalidDataException(e.Begin < expected
                    ? $"tensor '{e.Name}' overlaps the previous tensor (starts at {e.Begin}, previous ends at {expected})"
                    : $"tensor '{e.Name}' leaves a gap in the data (starts at {e.Begin}, previous ends at {expected})");
            expected = e.End;
        }
        if (expected != dataLength) throw new InvalidDataException($"tensor data covers {expected} bytes but the file holds {dataLength} after the header");
        return (entries, metadata);
    }

    private static TensorFile Build(List<(string Name, ScalarType DType, long[] Shape, long Begin, long End)> entries, Dictionary<string, string> metadata, ReadOnlySpan<byte> data)
    {
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var e in entries)
                tensors[e.Name] = Torch.FromBytes(data.Slice((int)e.Begin, (int)(e.End - e.Begin)), e.Shape, e.DType).DetachFromScope();
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return new TensorFile(tensors, metadata);
    }

    private static (string, ScalarType, long[], long, long) ParseEntry(JsonProperty prop)
    {
        var name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"entry '{name}' is not an object");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw new InvalidDataException($"tensor '{name}' has no dtype string");
        var code = dt.GetString()!;
        if (!DTypes.TryGetValue(code, out var dtype))
            throw new InvalidDataException(KnownButUnsupported.Contains(code)
                ? $"tensor '{name}' has dtype {code}, which MetaRun does not support (supported: {string.Join(", ", DTypes.Keys)})"
                : $"tensor '{name}' has unknown dtype '{code}'");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"tensor '{name}' has no shape array");
        var shape = new long[sh.GetArrayLength()];
        var numel = 1L;
        var k = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var n) || n < 0) throw new InvalidDataException($"tensor '{name}' has an invalid dimension {d}");
            shape[k++] = n;
            numel = TryMultiply(numel, n) ?? throw new InvalidDataException($"tensor '{name}' has a shape too large for 64-bit sizes");
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new InvalidDataException($"tensor '{name}' has no [begin, end] data_offsets");
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number ||
            !off[0].TryGetInt64(out var begin) || !off[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new InvalidDataException($"tensor '{name}' has invalid data_offsets [{off[0]}, {off[1]}]");
        var bytes = TryMultiply(numel, dtype.ElementSize()) ?? throw new InvalidDataException($"tensor '{name}' has a shape too large for 64-bit sizes");
        if (end - begin != bytes)
            throw new InvalidDataException($"tensor '{name}' spans {end - begin} bytes but shape [{string.Join(", ", shape)}] of {code} needs {bytes}");
        return (name, dtype, shape, begin, end);
    }

    private static long? TryMultiply(long a, long b)
    {
        try
        {
            return checked(a * b);
        }
        catch (OverflowException)
        {
            return null;
        }
    }
}
