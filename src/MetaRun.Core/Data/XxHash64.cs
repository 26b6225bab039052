using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;

namespace MetaRun.Data;

/// <summary>
/// XXH64 (Yann Collet's xxHash, 64-bit variant), written out here so the data layer needs no
/// extra package. Used for cache keys and the cache payload checksum (several GB/s).
/// </summary>
public static class XxHash64
{
    private const ulong P1 = 11400714785074694791UL;
    private const ulong P2 = 14029467366897019727UL;
    private const ulong P3 = 1609587929392839161UL;
    private const ulong P4 = 9650029242287828579UL;
    private const ulong P5 = 2870177450012600261UL;

    public static ulong Hash(ReadOnlySpan<byte> data, ulong seed = 0)
    {
        var len = data.Length;
        var p = 0;
        ulong h;
        if (len >= 32)
        {
            ulong v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
            var words = MemoryMarshal.Cast<byte, ulong>(data[..(len & ~31)]);
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian");
            for (var i = 0; i < words.Length; i += 4)
            {
                v1 = Round(v1, words[i]);
                v2 = Round(v2, words[i + 1]);
                v3 = Round(v3, words[i + 2]);
                v4 = Round(v4, words[i + 3]);
            }
            p = words.Length * 8;
            h = BitOperations.RotateLeft(v1, 1) + BitOperations.RotateLeft(v2, 7) + BitOperations.RotateLeft(v3, 12) + BitOperations.RotateLeft(v4, 18);
            h = Merge(h, v1);
            h = Merge(h, v2);
            h = Merge(h, v3);
            h = Merge(h, v4);
        }
        else
        {
            h = seed + P5;
        }
        h += (ulong)len;
        while (p + 8 <= len)
        {
            h ^= Round(0, BinaryPrimitives.ReadUInt64LittleEndian(data[p..]));
            h = BitOperations.RotateLeft(h, 27) * P1 + P4;
            p += 8;
        }
        if (p + 4 <= len)
        {
            h ^= BinaryPrimitives.ReadUInt32LittleEndian(data[p..]) * P1;
            h = BitOperations.RotateLeft(h, 23) * P2 + P3;
            p += 4;
        }
        while (p < len)
        {
            h ^= data[p] * P5;
            h = BitOperations.RotateLeft(h, 11) * P1;
            p++;
        }
        h ^= h >> 33;
        h *= P2;
        h ^= h >> 29;
        h *= P3;
        h ^= h >> 32;
        return h;
    }

    public static ulong Hash(string text, ulong seed = 0) => Hash(Encoding.UTF8.GetBytes(text), seed);

    private static ulong Round(ulong acc, ulong input)
    {
        acc += input * P2;
        acc = BitOperations.RotateLeft(acc, 31);
        return acc * P1;
    }

    private static ulong Merge(ulong acc, ulong val)
    {
        acc ^= Round(0, val);
        return acc * P1 + P4;
    }
}
