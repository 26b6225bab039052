using LibTorch;
using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>Hashing and sampling that episodes are drawn with: reference values, and independence from libtorch's thread count.</summary>
[Collection(DataSerialCollection.Name)]
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
    public void XxHash64MatchesTheReferenceOnAnInputOfSeveralStripes()
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

    [Fact]
    public void SamplingDoesNotDependOnTorchThreads()
    {
        using var dir = new TempDir("threads");
        var root = MiniImageNetBuilder.Build(dir.Sub("root"));
        var threads = Torch.Threads;
        try
        {
            var batches = new List<byte[]>();
            foreach (var n in new[] { 1, 2 })
            {
                Torch.Threads = n;
                using var f = TaskFamilies.Open(MiniImageNetBuilder.Config(root), null, 4, new DataOptions { UseCache = false });
                using var b = f.Sample(Split.Train, 0, 6, new EpisodeShape(3, 2, 2));
                batches.Add([.. b.SupportX.ToBytes(), .. b.QueryX.ToBytes(), .. b.SupportY.ToBytes()]);
            }
            Assert.Equal(batches[0], batches[1]);
        }
        finally
        {
            Torch.Threads = threads;
        }
    }
}

