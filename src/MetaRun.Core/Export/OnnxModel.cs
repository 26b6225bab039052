using Google.Protobuf;

namespace MetaRun.Export;

/// <summary>An ONNX attribute: an int, a float, a list of ints, or a string.</summary>
public sealed record OnnxAttribute(string Name, long? Int = null, float? Float = null, long[]? Ints = null, string? Text = null)
{
    public static OnnxAttribute Of(string name, long value) => new(name, Int: value);
    public static OnnxAttribute Of(string name, float value) => new(name, Float: value);
    public static OnnxAttribute Of(string name, params long[] values) => new(name, Ints: values);
}

public sealed record OnnxNode(string OpType, string[] Inputs, string[] Outputs, OnnxAttribute[] Attributes);

/// <summary>A constant tensor of the graph: float32 or int64, row-major.</summary>
public sealed record OnnxInitializer(string Name, long[] Dims, float[]? Floats = null, long[]? Longs = null);

/// <summary>A graph input or output: float32 with named (symbolic) or fixed dimensions.</summary>
public sealed record OnnxValue(string Name, object[] Dims, string? Doc = null);

/// <summary>
/// The subset of the ONNX format (onnx/onnx.proto, IR version 7, default-domain opset 13) that
/// an exported network needs, written with Google.Protobuf's <see cref="CodedOutputStream"/>.
/// Hand-encoded rather than compiled from onnx.proto: the dozen fields used here are stable
/// parts of the format, and a build-time protoc (Grpc.Tools ships a native binary per platform)
/// would be a build step for every contributor to save about a hundred lines. The field numbers
/// are onnx.proto's; ONNX Runtime and the onnx checker read these files in the tests.
/// </summary>
public sealed class OnnxModel
{
    public const long IrVersion = 7;
    public const long Opset = 13;
    // TensorProto.DataType
    private const int Float32 = 1, Int64 = 7;

    public required string GraphName { get; init; }
    public required IReadOnlyList<OnnxNode> Nodes { get; init; }
    public required IReadOnlyList<OnnxInitializer> Initializers { get; init; }
    public required IReadOnlyList<OnnxValue> Inputs { get; init; }
    public required IReadOnlyList<OnnxValue> Outputs { get; init; }
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }
    public string DocString { get; init; } = "";
    public string ProducerVersion { get; init; } = "";

    public byte[] ToBytes() => Message(m =>
    {
        m.Int64(1, IrVersion);                                // ir_version
        m.String(2, "MetaRun");                               // producer_name
        m.String(3, ProducerVersion);                         // producer_version
        m.String(6, DocString);                               // doc_string
        m.Message(7, WriteGraph);                             // graph
        m.Message(8, o => { o.String(1, ""); o.Int64(2, Opset); }); // opset_import: domain, version
        foreach (var (key, value) in Metadata)
            m.Message(14, e => { e.String(1, key); e.String(2, value); }); // metadata_props
    });

    private void WriteGraph(Writer g)
    {
        foreach (var n in Nodes) g.Message(1, w => WriteNode(w, n));  // node
        g.String(2, GraphName);                                        // name
        foreach (var t in Initializers) g.Message(5, w => WriteTensor(w, t)); // initializer
        foreach (var v in Inputs) g.Message(11, w => WriteValue(w, v));       // input
        foreach (var v in Outputs) g.Message(12, w => WriteValue(w, v));      // output
    }

    private static void WriteNode(Writer w, OnnxNode n)
    {
        foreach (var i in n.Inputs) w.String(1, i);   // input
        foreach (var o in n.Outputs) w.String(2, o);  // output
        w.String(3, n.Outputs[0]);                    // name
        w.String(4, n.OpType);                        // op_type
        foreach (var a in n.Attributes) w.Message(5, x => WriteAttribute(x, a)); // attribute
    }

    // AttributeProto: name 1, f 2, i 3, s 4, ints 8, type 20 (FLOAT 1, INT 2, STRING 3, INTS 7).
    private static void WriteAttribute(Writer w, OnnxAttribute a)
    {
        w.String(1, a.Name);
        if (a.Float is { } f) { w.Float(2, f); w.Int64(20, 1); }
        else if (a.Int is { } i) { w.Int64(3, i); w.Int64(20, 2); }
        else if (a.Text is { } s) { w.Bytes(4, System.Text.Encoding.UTF8.GetBytes(s)); w.Int64(20, 3); }
        else { w.PackedInt64(8, a.Ints!); w.Int64(20, 7); }
    }

    // TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian, as the format requires).
    private static void WriteTensor(Writer w, OnnxInitializer t)
    {
        w.PackedInt64(1, t.Dims);
        w.Int64(2, t.Floats != null ? Float32 : Int64);
        w.String(8, t.Name);
        var raw = t.Floats != null ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Floats.AsSpan()).ToArray()
            : System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Longs!.AsSpan()).ToArray();
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw data is little-endian");
        w.Bytes(9, raw);
    }

    // ValueInfoProto: name 1, type 2 → TypeProto.tensor_type 1 → elem_type 1, shape 2 → dim 1 → dim_value 1 | dim_param 2.
    private static void WriteValue(Writer w, OnnxValue v)
    {
        w.String(1, v.Name);
        w.Message(2, type => type.Message(1, tensor =>
        {
            tensor.Int64(1, Float32);
            tensor.Message(2, shape =>
            {
                foreach (var d in v.Dims)
                    shape.Message(1, dim => { if (d is string p) dim.String(2, p); else dim.Int64(1, Convert.ToInt64(d)); });
            });
        }));
        if (v.Doc != null) w.String(3, v.Doc);
    }

    private static byte[] Message(Action<Writer> body)
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream, leaveOpen: true);
        body(new Writer(output));
        output.Flush();
        return stream.ToArray();
    }

    /// <summary>Fields of one message; a nested message is encoded first, then written length-delimited.</summary>
    private sealed class Writer(CodedOutputStream o)
    {
        public void Int64(int field, long v) { o.WriteTag(field, WireFormat.WireType.Varint); o.WriteInt64(v); }
        public void Float(int field, float v) { o.WriteTag(field, WireFormat.WireType.Fixed32); o.WriteFloat(v); }
        public void String(int field, string v) { o.WriteTag(field, WireFormat.WireType.LengthDelimited); o.WriteString(v); }
        public void Bytes(int field, byte[] v) { o.WriteTag(field, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(v)); }
        public void Message(int field, Action<Writer> body) => Bytes(field, OnnxModel.Message(body));

        public void PackedInt64(int field, long[] values)
        {
            if (values.Length == 0) return;
            Bytes(field, OnnxModel.Message(w => { foreach (var v in values) w.Raw(v); }));
        }

        private void Raw(long v) => o.WriteInt64(v);
    }
}
