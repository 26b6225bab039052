using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using Google.Protobuf;

namespace MetaRun.Training;

/// <summary>
/// A TensorBoard event file (events.out.tfevents.*): TFRecord framing — for each record its
/// length (uint64 little-endian), the masked CRC-32C of the length, the bytes, the masked CRC-32C
/// of the bytes — around serialized tensorflow.Event messages. The first record is the
/// "brain.Event:2" file-version event TensorBoard looks for. Every record is flushed to the
/// operating system as it is written, so TensorBoard shows a run while it trains.
/// </summary>
/// <remarks>
/// The few messages written (Event, Summary, Summary.Value, SummaryMetadata.PluginData,
/// TensorProto, SessionLog; field numbers from tensorflow/core/util/event.proto and
/// framework/summary.proto) are encoded field by field with Google.Protobuf's CodedOutputStream
/// rather than generated from .proto files: generating needs protoc at build time and ~2,000 lines
/// of generated code for eleven fields, and the field numbers are a stable file format that the
/// independent reader in the tests checks against its own definitions.
/// </remarks>
public sealed class EventFile : IDisposable
{
    public const string Prefix = "events.out.tfevents.";
    private readonly FileStream stream;

    public string Path { get; }

    /// <summary>
    /// A new event file in <paramref name="folder"/>, named as TensorFlow names them (seconds, host)
    /// then the milliseconds and what wrote it: TensorBoard reads a folder's files in name order,
    /// so a resumed run's file sorts after the interrupted one's even within one second.
    /// </summary>
    public EventFile(string folder, string kind)
    {
        var now = DateTimeOffset.UtcNow;
        for (var ms = now.ToUnixTimeMilliseconds(); ; ms++)
        {
            Path = System.IO.Path.Combine(folder, $"{Prefix}{ms / 1000:D10}.{Environment.MachineName}.{ms:D13}.{kind}");
            try
            {
                stream = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
                break;
            }
            catch (IOException) when (File.Exists(Path)) { }
        }
        Write(Event(0, o => { o.WriteTag(3, WireFormat.WireType.LengthDelimited); o.WriteString("brain.Event:2"); }, now));
    }

    /// <summary>Scalars at one step, as one event (tags like "train/loss"); non-finite values are left out.</summary>
    public void Scalars(long step, IEnumerable<(string Tag, double Value)> values)
    {
        var summary = Message(o =>
        {
            foreach (var (tag, v) in values)
            {
                if (!double.IsFinite(v)) continue;
                o.WriteTag(1, WireFormat.WireType.LengthDelimited);
                o.WriteBytes(Message(x =>
                {
                    x.WriteTag(1, WireFormat.WireType.LengthDelimited); x.WriteString(tag);
                    x.WriteTag(2, WireFormat.WireType.Fixed32); x.WriteFloat((float)v);
                }));
            }
        });
        if (summary.Length == 0) return;
        Write(Event(step, o => { o.WriteTag(5, WireFormat.WireType.LengthDelimited); o.WriteBytes(summary); }));
    }

    /// <summary>Text for TensorBoard's Text tab (rendered as Markdown): a string tensor with the "text" plugin's metadata.</summary>
    public void Text(long step, string tag, string markdown)
    {
        var value = Message(x =>
        {
            x.WriteTag(1, WireFormat.WireType.LengthDelimited); x.WriteString(tag);
            // Value.tensor (8): TensorProto { dtype = DT_STRING (7), tensor_shape = {} (a scalar), string_val (8) }.
            x.WriteTag(8, WireFormat.WireType.LengthDelimited);
            x.WriteBytes(Message(t =>
            {
                t.WriteTag(1, WireFormat.WireType.Varint); t.WriteEnum(7);
                t.WriteTag(2, WireFormat.WireType.LengthDelimited); t.WriteBytes(ByteString.Empty);
                t.WriteTag(8, WireFormat.WireType.LengthDelimited); t.WriteBytes(ByteString.CopyFromUtf8(markdown));
            }));
            // Value.metadata (9): SummaryMetadata { plugin_data (1) = PluginData { plugin_name (1) = "text" } }.
            x.WriteTag(9, WireFormat.WireType.LengthDelimited);
            x.WriteBytes(Message(m => { m.WriteTag(1, WireFormat.WireType.LengthDelimited); m.WriteBytes(Message(p => { p.WriteTag(1, WireFormat.WireType.LengthDelimited); p.WriteString("text"); })); }));
        });
        var summary = Message(o => { o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteBytes(value); });
        Write(Event(step, o => { o.WriteTag(5, WireFormat.WireType.LengthDelimited); o.WriteBytes(summary); }));
    }

    /// <summary>
    /// SessionLog START at <paramref name="step"/>: a resumed run says it restarted there, and
    /// TensorBoard drops the points an interrupted run wrote past its checkpoint (they were redone).
    /// </summary>
    public void Restart(long step) =>
        Write(Event(step, o => { o.WriteTag(6, WireFormat.WireType.LengthDelimited); o.WriteBytes(Message(s => { s.WriteTag(1, WireFormat.WireType.Varint); s.WriteEnum(1); })); }));

    private static ByteString Event(long step, Action<CodedOutputStream> what, DateTimeOffset? at = null) => Message(o =>
    {
        o.WriteTag(1, WireFormat.WireType.Fixed64); o.WriteDouble((at ?? DateTimeOffset.UtcNow).ToUnixTimeMilliseconds() / 1000.0);
        if (step != 0) { o.WriteTag(2, WireFormat.WireType.Varint); o.WriteInt64(step); }
        what(o);
    });

    private static ByteString Message(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var o = new CodedOutputStream(buffer, leaveOpen: true)) write(o);
        return ByteString.CopyFrom(buffer.ToArray());
    }

    private void Write(ByteString record)
    {
        var data = record.ToByteArray();
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc32C(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc32C(data));
        stream.Write(header);
        stream.Write(data);
        stream.Write(footer);
        stream.Flush();
    }

    /// <summary>CRC-32C (Castagnoli; .NET's BitOperations, hardware-accelerated where the CPU has it).</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    /// <summary>TFRecord's mask: rotate right by 15 and add a constant, so CRCs of data holding CRCs stay strong.</summary>
    public static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        var crc = Crc32C(data);
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }

    public void Dispose() => stream.Dispose();
}
