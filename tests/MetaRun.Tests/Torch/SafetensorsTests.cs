using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using LibTorch;
using static MetaRun.Tests.LibTorch.TestSupport;

namespace MetaRun.Tests.LibTorch;

/// <summary>The safetensors reader and writer: round trips, a hand-built file, and corrupt files.</summary>
public sealed class SafetensorsTests
{
    /// <summary>8-byte little-endian header length, the JSON header, then the raw data (per the format's specification).</summary>
    private static byte[] File(string header, byte[] data, ulong? headerLength = null) => File(Encoding.UTF8.GetBytes(header), data, headerLength);

    private static byte[] File(byte[] h, byte[] data, ulong? headerLength = null)
    {
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    [Fact]
    public void EverySupportedDtypeRoundTripsWithMetadata()
    {
        using var scope = Torch.NewScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["u8"] = Torch.From(new byte[] { 0, 1, 127, 128, 254, 255 }, 2, 3),
            ["bool"] = Torch.From([true, false, false, true]),
            ["i32"] = Torch.From([int.MinValue, -1, int.MaxValue]),
            ["i64"] = Torch.From([long.MinValue, 0, 1L << 40, long.MaxValue], 2, 2),
            ["f32"] = Torch.From([1.5f, float.NegativeInfinity, -0f, float.Epsilon], 2, 1, 2),
            ["f64"] = F64(Math.PI, -1e-308, double.MaxValue),
            ["scalar"] = Torch.Scalar(-7.25, ScalarType.Float64),
            ["empty"] = Torch.Zeros([0]),
            ["empty 3d"] = Torch.Zeros([2, 0, 3], ScalarType.Int64),
            ["non-contiguous"] = F64([1, 2, 3, 4, 5, 6], 2, 3).Transpose(0, 1),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcødé ✓ \"quoted\"", ["empty"] = "" };

        var bytes = Safetensors.Serialize(tensors, metadata);
        var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + headerLength) % 8); // the data starts 8-byte aligned
        using (var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength)))
            Assert.Equal("pt", header.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());

        using var file = Safetensors.Deserialize(bytes);
        Assert.Equal(tensors.Keys.Order(), file.Tensors.Keys.Order());
        foreach (var (name, expected) in tensors)
        {
            var actual = file[name];
            Assert.Equal(expected.DType, actual.DType);
            Assert.Equal(expected.Shape, actual.Shape);
            Assert.Equal(expected.ToBytes(), actual.ToBytes());
        }
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal([1.0, 4, 2, 5, 3, 6], file["non-contiguous"].D());
        Assert.Empty(file["scalar"].Shape);
        Assert.Equal(-7.25, file["scalar"].Item());
        Assert.Throws<InvalidDataException>(() => file["missing"]);

        // And through a file on disk.
        var path = Path.Combine(Path.GetTempPath(), $"metarun-test-{Guid.NewGuid():N}.safetensors");
        try
        {
            Safetensors.Save(path, tensors);
            using var loaded = Safetensors.Load(path);
            Assert.Empty(loaded.Metadata);
            Assert.Equal(tensors["i64"].ToArray<long>(), loaded["i64"].ToArray<long>());
            Assert.Equal(tensors["bool"].ToArray<bool>(), loaded["bool"].ToArray<bool>());
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Fact]
    public void LoadedTensorsBelongToTheFileNotToTheOpenScope()
    {
        using var scope = Torch.NewScope();
        var bytes = Safetensors.Serialize(new Dictionary<string, Tensor> { ["x"] = F64(1, 2) });
        TensorFile file;
        using (Torch.NewScope()) file = Safetensors.Deserialize(bytes);
        Assert.Equal([1.0, 2], file["x"].D());
        file.Dispose();
        Assert.True(file["x"].IsDisposed);
    }

    [Fact]
    public void AnEmptyDictionaryRoundTrips()
    {
        var bytes = Safetensors.Serialize(new Dictionary<string, Tensor>());
        using var file = Safetensors.Deserialize(bytes);
        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
    }

    [Fact]
    public void AFileBuiltByteByByteFromTheSpecificationLoadsWithTheRightValues()
    {
        // Data laid out in an order unrelated to the header's key order, no padding.
        var data = new List<byte>();
        void F32(float v) { var b = new byte[4]; BinaryPrimitives.WriteSingleLittleEndian(b, v); data.AddRange(b); }
        void I64v(long v) { var b = new byte[8]; BinaryPrimitives.WriteInt64LittleEndian(b, v); data.AddRange(b); }
        void F64v(double v) { var b = new byte[8]; BinaryPrimitives.WriteDoubleLittleEndian(b, v); data.AddRange(b); }
        void I32(int v) { var b = new byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, v); data.AddRange(b); }
        data.AddRange([1, 0, 1]);                               // flags: BOOL [3]      0..3
        data.AddRange([9, 200]);                                // pixels: U8 [2, 1]    3..5
        foreach (var v in new[] { 1.5f, -2f, 3.25f, 0f }) F32(v); // weight: F32 [2, 2] 5..21
        foreach (var v in new[] { 1L, -1L, 1L << 40 }) I64v(v);   // ids: I64 [3]       21..45
        F64v(-0.125);                                           // scale: F64 []        45..53
        I32(-123456);                                           // count: I32 [1]       53..57
        const string header = """
            {"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[5,21]},
             "ids":{"dtype":"I64","shape":[3],"data_offsets":[21,45]},
             "__metadata__":{"source":"hand-built"},
             "flags":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]},
             "nothing":{"dtype":"F64","shape":[0,4],"data_offsets":[3,3]},
             "pixels":{"dtype":"U8","shape":[2,1],"data_offsets":[3,5]},
             "scale":{"dtype":"F64","shape":[],"data_offsets":[45,53]},
             "count":{"dtype":"I32","shape":[1],"data_offsets":[53,57]}}
            """;
        using var file = Safetensors.Deserialize(File(header, data.ToArray()));
        Assert.Equal("hand-built", file.Metadata["source"]);
        Assert.Equal(7, file.Tensors.Count);
        Assert.Equal(ScalarType.Float32, file["weight"].DType);
        Assert.Equal([2L, 2L], file["weight"].Shape);
        Assert.Equal([1.5f, -2f, 3.25f, 0f], file["weight"].ToArray<float>());
        Assert.Equal([1L, -1L, 1L << 40], file["ids"].ToArray<long>());
        Assert.Equal([true, false, true], file["flags"].ToArray<bool>());
        Assert.Equal([0L, 4L], file["nothing"].Shape);
        Assert.Equal(new byte[] { 9, 200 }, file["pixels"].ToArray<byte>());
        Assert.Equal([2L, 1L], file["pixels"].Shape);
        Assert.Empty(file["scale"].Shape);
        Assert.Equal(-0.125, file["scale"].Item());
        Assert.Equal(ScalarType.Int32, file["count"].DType);
        Assert.Equal([-123456], file["count"].ToArray<int>());
    }

    private const string OneTensor = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";

    private static readonly Dictionary<string, (byte[] Bytes, string Message)> Corrupt = new()
    {
        ["truncated file"] = (File(OneTensor, new byte[8])[..^3], "covers 8 bytes but the file holds 5"),
        ["fewer than 8 bytes"] = ([1, 2, 3], "shorter than the 8-byte header length"),
        ["empty file"] = ([], "file is 0 bytes"),
        ["header length over the limit"] = (File(OneTensor, new byte[8], 1_000_000_000), "exceeds the 100000000-byte limit"),
        ["header length 2^64-1"] = (File(OneTensor, new byte[8], ulong.MaxValue), "exceeds"),
        ["header length past the end"] = (File(OneTensor, new byte[8], 100), "runs past the end of the file"),
        ["header not JSON"] = (File("this is not json", []), "header is not valid JSON"),
        ["header truncated JSON"] = (File("""{"a":{"dtype":"F32",""", []), "header is not valid JSON"),
        ["header invalid UTF-8 in a name"] = (File([.. "{\""u8, 0xFF, 0xFE, .. "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"u8], new byte[8]), "not valid UTF-8"),
        ["header invalid UTF-8 in metadata"] = (File([.. "{\"__metadata__\":{\"k\":\""u8, 0xC3, .. "\"}}"u8], []), "not valid UTF-8"),
        ["header a JSON array"] = (File("[1, 2]", []), "header is not a JSON object"),
        ["entry not an object"] = (File("""{"a":5}""", []), "entry 'a' is not an object"),
        ["offsets past the end"] = (File("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", new byte[8]), "covers 16 bytes but the file holds 8"),
        ["overlapping ranges"] = (File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[12]), "overlaps"),
        ["gap between tensors"] = (File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}""", new byte[20]), "leaves a gap"),
        ["gap at the start"] = (File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[12]), "leaves a gap"),
        ["bytes after the last tensor"] = (File(OneTensor, new byte[12]), "covers 8 bytes but the file holds 12"),
        ["size not shape times dtype"] = (File("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", new byte[8]), "spans 8 bytes but shape [3] of F32 needs 12"),
        ["unknown dtype string"] = (File("""{"a":{"dtype":"FLOAT","shape":[2],"data_offsets":[0,8]}}""", new byte[8]), "unknown dtype 'FLOAT'"),
        ["lower-case dtype"] = (File("""{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}""", new byte[8]), "unknown dtype 'f32'"),
        ["unsupported dtype F16"] = (File("""{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}""", new byte[8]), "dtype F16, which MetaRun does not support"),
        ["dtype not a string"] = (File("""{"a":{"dtype":6,"shape":[2],"data_offsets":[0,8]}}""", new byte[8]), "has no dtype string"),
        ["missing shape"] = (File("""{"a":{"dtype":"F32","data_offsets":[0,8]}}""", new byte[8]), "has no shape array"),
        ["negative dimension"] = (File("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", new byte[8]), "invalid dimension -2"),
        ["fractional dimension"] = (File("""{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}""", new byte[8]), "invalid dimension 2.5"),
        ["dimensions overflowing int64"] = (File("""{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}""", new byte[8]), "too large"),
        ["byte size overflowing int64"] = (File("""{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}""", new byte[8]), "too large"),
        ["missing data_offsets"] = (File("""{"a":{"dtype":"F32","shape":[2]}}""", new byte[8]), "has no [begin, end] data_offsets"),
        ["data_offsets of one number"] = (File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}""", new byte[8]), "has no [begin, end] data_offsets"),
        ["data_offsets reversed"] = (File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""", new byte[8]), "invalid data_offsets"),
        ["data_offsets negative"] = (File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}""", new byte[8]), "invalid data_offsets"),
        ["data_offsets not numbers"] = (File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}}""", new byte[8]), "invalid data_offsets"),
        ["metadata value not a string"] = (File("""{"__metadata__":{"epoch":3}}""", []), "metadata 'epoch' is not a string"),
        ["metadata not an object"] = (File("""{"__metadata__":["a"]}""", []), "__metadata__ is not an object"),
        ["duplicate tensor name"] = (File("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", new byte[8]), "'a' appears twice"),
    };

    public static TheoryData<string> CorruptCases
    {
        get
        {
            var d = new TheoryData<string>();
            foreach (var k in Corrupt.Keys) d.Add(k);
            return d;
        }
    }

    [Theory]
    [MemberData(nameof(CorruptCases))]
    public void ACorruptFileFailsWithInvalidDataExceptionAndAClearMessage(string corruption)
    {
        var (bytes, message) = Corrupt[corruption];
        var e = Assert.Throws<InvalidDataException>(() => Safetensors.Deserialize(bytes));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void LoadNamesTheFileInItsErrors()
    {
        var path = Path.Combine(Path.GetTempPath(), $"metarun-test-{Guid.NewGuid():N}.safetensors");
        try
        {
            System.IO.File.WriteAllBytes(path, [1, 2, 3]);
            var e = Assert.Throws<InvalidDataException>(() => Safetensors.Load(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("shorter than the 8-byte header length", e.Message);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
        var missing = Assert.Throws<InvalidDataException>(() => Safetensors.Load(path));
        Assert.Contains("cannot read", missing.Message);
    }
}
