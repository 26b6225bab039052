namespace MetaRun.Data;

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
