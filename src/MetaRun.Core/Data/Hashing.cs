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

/// <summary>
/// SplitMix64 (Steele, Lea and Flood 2014): a tiny counter-based generator. Every episode gets
/// its own, seeded from a hash of (run seed, split, episode index), so episode i never depends
/// on which episodes were drawn before it, on which thread, or in which order.
/// </summary>
public struct SplitMix64(ulong state)
{
    private const ulong Gamma = 0x9E3779B97F4A7C15UL;
    private ulong state = state;

    public ulong NextUInt64()
    {
        state += Gamma;
        return Mix(state);
    }

    /// <summary>The SplitMix64 output function: a bijective 64-bit mixer.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform on [0, n) without modulo bias (Lemire's multiply-and-reject).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        var bound = (ulong)n;
        var hi = Math.BigMul(NextUInt64(), bound, out var lo);
        if (lo < bound)
        {
            var threshold = (0 - bound) % bound;
            while (lo < threshold) hi = Math.BigMul(NextUInt64(), bound, out lo);
        }
        return (int)hi;
    }

    /// <summary>Uniform on [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>The generator of one episode: a pure function of its three coordinates.</summary>
    public static SplitMix64 ForEpisode(long seed, Split split, long index, ulong salt = 0) =>
        new(Mix(Mix(Mix((ulong)seed ^ 0x6D65746172756E00UL) + (ulong)split + 1 + salt) ^ (ulong)index));

    /// <summary>
    /// Draws <paramref name="k"/> distinct integers from [0, n) in random order: the first k steps
    /// of a Fisher–Yates shuffle of 0..n−1, run on a sparse map so it costs O(k), not O(n).
    /// </summary>
    public void SampleDistinct(int n, Span<int> result)
    {
        var k = result.Length;
        if (k > n) throw new ArgumentException($"cannot draw {k} distinct values from {n}");
        if (k > 64)
        {
            var map = new Dictionary<int, int>(2 * k);
            for (var j = 0; j < k; j++)
            {
                var r = j + NextInt(n - j);
                var vr = map.TryGetValue(r, out var a) ? a : r;
                var vj = map.TryGetValue(j, out var b) ? b : j;
                map[r] = vj;
                result[j] = vr;
            }
            return;
        }
        // The positions of the virtual array 0..n−1 that were swapped away from the identity.
        Span<int> keys = stackalloc int[2 * k];
        Span<int> vals = stackalloc int[2 * k];
        var used = 0;
        for (var j = 0; j < k; j++)
        {
            var r = j + NextInt(n - j);
            int vr = r, vj = j, ri = -1;
            for (var i = 0; i < used; i++)
            {
                if (keys[i] == r) { vr = vals[i]; ri = i; }
                if (keys[i] == j) vj = vals[i];
            }
            if (ri >= 0) vals[ri] = vj;
            else { keys[used] = r; vals[used] = vj; used++; }
            result[j] = vr;
        }
    }

    /// <summary>Shuffles in place (Fisher–Yates, from the back).</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
