using LibTorch;
using MetaRun.Data;

namespace MetaRun.Tests.Data;


public sealed class SamplingTests
{
    [Theory]
    [InlineData(0UL, "", 0xEF46DB3751D8E999UL)]
    [InlineData(0UL, "a", 0xD24EC4F1A98C6E5BUL)]
    [InlineData(0UL, "abc", 0x44BC2CF5AD770999UL)]
    [InlineData(1UL, "abc", 0xBEA9CA8199328908UL)]
    [InlineData(0UL, "Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1UL)]
    public void XxHash64MatchesReferenceVectors(ulong seed, string text, ulong expected) =>
        Assert.Equal(expected, XxHash64.Hash(System.Text.Encoding.ASCII.GetBytes(text), seed));

    [Fact]
    public void XxHash64LongInput()
    {
        var data = Enumerable.Range(0, 3).SelectMany(_ => Enumerable.Range(0, 256).Select(i => (byte)i)).Concat("xyz"u8.ToArray()).ToArray();
        Assert.Equal(0xE921A1B45BD779F8UL, XxHash64.Hash(data));
    }

    [Theory]
    [InlineData(200, 10)]
    [InlineData(200, 64)]
    [InlineData(200, 65)]
    [InlineData(200, 200)]
    [InlineData(1, 1)]
    public void SampleDistinctIsAPartialFisherYates(int n, int k)
    {
        for (ulong seed = 0; seed < 20; seed++)
        {
            var rng = new SplitMix64(seed);
            var got = new int[k];
            rng.SampleDistinct(n, got);
            // Reference: the same draws on an explicit array.
            var reference = new SplitMix64(seed);
            var a = Enumerable.Range(0, n).ToArray();
            for (var j = 0; j < k; j++)
            {
                var r = j + reference.NextInt(n - j);
                (a[j], a[r]) = (a[r], a[j]);
            }
            Assert.Equal(a[..k], got);
            Assert.Equal(k, got.Distinct().Count());
            Assert.All(got, v => Assert.InRange(v, 0, n - 1));
        }
    }

    [Fact]
    public void NextIntIsUniform()
    {
        var rng = new SplitMix64(42);
        var counts = new int[7];
        for (var i = 0; i < 70000; i++) counts[rng.NextInt(7)]++;
        Assert.All(counts, c => Assert.InRange(c, 9500, 10500));
        var d = Enumerable.Range(0, 10000).Select(_ => rng.NextDouble()).ToArray();
        Assert.All(d, v => Assert.InRange(v, 0.0, 1.0 - 1e-17));
        Assert.InRange(d.Average(), 0.49, 0.51);
    }

    [Fact]
    public void EpisodeGeneratorsDependOnSeedSplitAndIndexOnly()
    {
        ulong First(long seed, Split split, long i) => SplitMix64.ForEpisode(seed, split, i).NextUInt64();
        Assert.Equal(First(1, Split.Train, 5), First(1, Split.Train, 5));
        var all = new HashSet<ulong>();
        foreach (var seed in new long[] { 0, 1, -1 })
        foreach (var split in new[] { Split.Train, Split.Val, Split.Test })
        for (long i = 0; i < 100; i++)
            all.Add(First(seed, split, i));
        Assert.Equal(900, all.Count);
    }

    [Fact]
    public void RotationMapsAreNpRot90()
    {
        var maps = ImageTaskFamily.RotationMaps(5);
        var reference = ImageTaskFamilyAccess.RotationMaps(5);
        for (var r = 0; r < 4; r++) Assert.Equal(reference[r], maps[r]);
        Assert.Equal(Enumerable.Range(0, 25), maps[0]);
        // rot90 ccw: the top row of the output is the right column of the input, read top-down.
        Assert.Equal([4, 9, 14, 19, 24], maps[1][..5]);
    }

    [Fact]
    public void ToFloatVectorAndScalarPathsAgree()
    {
        var src = Enumerable.Range(0, 1000).Select(i => (byte)(i * 37 % 256)).ToArray();
        var dst = new float[src.Length];
        ImageTaskFamily.ToFloat(src, dst, 1 / (255f * 0.27f), -0.47f / 0.27f);
        for (var i = 0; i < src.Length; i++) Assert.Equal(src[i] * (1 / (255f * 0.27f)) + -0.47f / 0.27f, dst[i]);
    }
}

public sealed class SinusoidTests
{
    private static readonly EpisodeShape Shape = new(1, 10, 7);

    [Fact]
    public void ShapesAndTypes()
    {
        using var f = TaskFamilies.Open(new MetaRun.Config.DataConfig { Dataset = MetaRun.Config.Dataset.Sinusoid }, null, 3);
        Assert.True(f.IsRegression);
        Assert.Equal([1L], f.InputShape);
        Assert.Equal(0, f.ClassCount(Split.Train));
        using var b = f.Sample(Split.Train, 0, 4, Shape);
        Assert.Equal([4L, 10, 1], b.SupportX.Shape);
        Assert.Equal([4L, 10, 1], b.SupportY.Shape);
        Assert.Equal([4L, 7, 1], b.QueryX.Shape);
        Assert.Equal([4L, 7, 1], b.QueryY.Shape);
        Assert.Equal(ScalarType.Float32, b.SupportY.DType);
        Assert.Equal(4, b.Tasks);
    }

    [Fact]
    public void ValuesFollowTheTasksSinusoid()
    {
        var f = new SinusoidTaskFamily(9);
        using var b = f.Sample(Split.Val, 100, 50, Shape);
        var sx = b.SupportX.ToArray<float>();
        var sy = b.SupportY.ToArray<float>();
        var qx = b.QueryX.ToArray<float>();
        var qy = b.QueryY.ToArray<float>();
        var amplitudes = new List<double>();
        var phases = new List<double>();
        for (var t = 0; t < 50; t++)
        {
            var (a, p) = f.Task(Split.Val, 100 + t);
            Assert.InRange(a, 0.1, 5.0);
            Assert.InRange(p, 0, Math.PI);
            amplitudes.Add(a);
            phases.Add(p);
            for (var i = 0; i < 10; i++)
            {
                Assert.InRange(sx[t * 10 + i], -5f, 5f);
                Assert.Equal(a * Math.Sin(sx[t * 10 + i] - p), sy[t * 10 + i], 1e-6);
            }
            for (var i = 0; i < 7; i++) Assert.Equal(a * Math.Sin(qx[t * 7 + i] - p), qy[t * 7 + i], 1e-6);
        }
        Assert.True(amplitudes.Max() - amplitudes.Min() > 2, "amplitudes should spread over [0.1, 5]");
        Assert.True(phases.Max() - phases.Min() > 1, "phases should spread over [0, π]");
        Assert.All(sy, y => Assert.InRange(y, -5f, 5f));
    }

    [Fact]
    public void Deterministic()
    {
        var a = new SinusoidTaskFamily(5);
        var b = new SinusoidTaskFamily(5);
        using var x = a.Sample(Split.Train, 10, 3, Shape);
        using var y = b.Sample(Split.Train, 10, 3, Shape);
        DataTestSupport.AssertSameBatch(x, y);
        using var one = a.Sample(Split.Train, 11, 1, Shape);
        Assert.Equal(one.SupportY.ToBytes(), x.SupportY.Narrow(0, 1, 1).Contiguous().ToBytes());
        using var z = a.Sample(Split.Train, 11, 3, Shape);
        Assert.False(DataTestSupport.SameBatch(x, z));
        using var w = new SinusoidTaskFamily(6).Sample(Split.Train, 10, 3, Shape);
        Assert.False(DataTestSupport.SameBatch(x, w));
        using var v = a.Sample(Split.Test, 10, 3, Shape);
        Assert.False(DataTestSupport.SameBatch(x, v));
    }
}

public sealed class PrefetcherTests
{
    private static MetaBatch Batch(long i)
    {
        var t = Torch.From(new float[] { i });
        return new MetaBatch(t, Torch.From(new long[] { i }), Torch.From(new float[] { -i }), Torch.From(new long[] { -i }));
    }

    [Fact]
    public void HandsOutBatchesInOrderFromTheStartIndex()
    {
        using var p = new Prefetcher(Batch, 5, depth: 2);
        for (long i = 5; i < 30; i++)
        {
            Assert.Equal(i, p.NextIndex);
            using var b = p.Next();
            Assert.Equal(i, b.SupportY.ToArray<long>()[0]);
        }
    }

    [Fact]
    public void WorksAheadAndDisposalFreesWhatWasNotTaken()
    {
        var made = new System.Collections.Concurrent.ConcurrentQueue<MetaBatch>();
        var p = new Prefetcher(i => { var b = Batch(i); made.Enqueue(b); return b; }, 0, depth: 3);
        var first = p.Next();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (p.Ready < 3 && DateTime.UtcNow < deadline) Thread.Sleep(5);
        Assert.Equal(3, p.Ready);
        p.Dispose();
        Assert.False(first.SupportX.IsDisposed); // the consumer's
        Assert.All(made.Where(b => b != first), b => Assert.True(b.SupportX.IsDisposed && b.QueryY.IsDisposed));
        first.Dispose();
        Assert.Throws<ObjectDisposedException>(() => p.Next());
    }

    [Fact]
    public void ProducerErrorsReachTheConsumerInOrder()
    {
        using var p = new Prefetcher(i => i == 3 ? throw new DataException($"broken batch {i}") : Batch(i), 0);
        for (var i = 0; i < 3; i++) p.Next().Dispose();
        var e = Assert.Throws<DataException>(() => p.Next());
        Assert.Equal("broken batch 3", e.Message);
    }

    [Fact]
    public void TensorsMadeOnThePrefetchThreadSurviveTheConsumersScope()
    {
        using var p = new Prefetcher(Batch, 0);
        MetaBatch b;
        using (Torch.NewScope()) b = p.Next();
        Assert.False(b.SupportX.IsDisposed);
        b.Dispose();
        Assert.True(b.SupportX.IsDisposed);
    }
}
