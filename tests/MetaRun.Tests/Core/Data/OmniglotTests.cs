using System.IO.Compression;
using LibTorch;
using MetaRun.Data;

namespace MetaRun.Tests.Data;


[Collection(OmniglotCollection.Name)]
public sealed class OmniglotTests(OmniglotFixture fx)
{
    private static readonly EpisodeShape FiveOne = new(5, 1, 15);

    [Fact]
    public void ManifestMatchesTheRelease()
    {
        Assert.Equal(50, Omniglot.Manifest.Count);
        Assert.Equal(30, Omniglot.Manifest.Count(a => a.Part == "images_background"));
        Assert.Equal(964, Omniglot.Manifest.Where(a => a.Part == "images_background").Sum(a => a.Characters));
        Assert.Equal(659, Omniglot.Manifest.Where(a => a.Part == "images_evaluation").Sum(a => a.Characters));
        // Character ids 1..1623 each appear once.
        Assert.Equal(Enumerable.Range(1, 1623), Omniglot.Characters.Select(c => c.Id).Order());
        Assert.Equal("images_background/Arcadian/character01/0001_01.png", Omniglot.Characters.Single(c => c.Id == 1).ImagePath(1));
    }

    [Fact]
    public void StoreHoldsEveryImageAt28Pixels()
    {
        var store = fx.Vinyals.Store;
        Assert.Equal(32460, store.ImageCount);
        Assert.Equal(1623, store.ClassCount);
        Assert.All(store.ClassSizes, s => Assert.Equal(20, s));
        Assert.Equal([1L, 28, 28], fx.Vinyals.InputShape);
        Assert.False(fx.Vinyals.IsRegression);
    }

    [Fact]
    public void TheVinyalsSplitHasItsDocumentedClassAndCharacterCounts()
    {
        var f = fx.Vinyals;
        Assert.Equal(4400, f.ClassCount(Split.Train));
        Assert.Equal(400, f.ClassCount(Split.Val));
        Assert.Equal(1692, f.ClassCount(Split.Test));
        Assert.Equal(1100, Characters(f, Split.Train).Count);
        Assert.Equal(100, Characters(f, Split.Val).Count);
        Assert.Equal(423, Characters(f, Split.Test).Count);
    }

    [Fact]
    public void TheLakeSplitHasItsDocumentedAlphabetsAndCountsAndNoRotations()
    {
        var f = fx.Lake;
        // Split seed 0 holds out these five background alphabets for validation (docs/data.md).
        Assert.Equal(LakeValAlphabets, AlphabetsOf(f, Split.Val));
        Assert.Equal(172, f.ClassCount(Split.Val));
        Assert.Equal(792, f.ClassCount(Split.Train));
        Assert.Equal(659, f.ClassCount(Split.Test));
        Assert.Equal(25, AlphabetsOf(f, Split.Train).Count);
        Assert.Equal(20, AlphabetsOf(f, Split.Test).Count);
        Assert.All(AlphabetsOf(f, Split.Test), a => Assert.Equal("images_evaluation", Omniglot.Manifest.Single(m => m.Name == a).Part));
        Assert.All(f.Classes(Split.Train).Concat(f.Classes(Split.Val)).Concat(f.Classes(Split.Test)), c => Assert.Equal(0, c.Rotation));
    }

    private static readonly string[] LakeValAlphabets = ["Blackfoot_(Canadian_Aboriginal_Syllabics)", "Burmese_(Myanmar)", "Grantha", "Latin", "Tifinagh"];

    private static SortedSet<string> AlphabetsOf(ImageTaskFamily f, Split split) =>
        new(f.Classes(split).Select(c => Omniglot.Characters[c.Source].Alphabet.Name), StringComparer.Ordinal);

    private static HashSet<int> Characters(ImageTaskFamily f, Split split) => [.. f.Classes(split).Select(c => c.Source)];

    [Theory]
    [InlineData("vinyals")]
    [InlineData("lake")]
    public void NoCharacterIsSharedBetweenSplits(string split)
    {
        var f = split == "vinyals" ? fx.Vinyals : fx.Lake;
        var train = Characters(f, Split.Train);
        var val = Characters(f, Split.Val);
        var test = Characters(f, Split.Test);
        Assert.Empty(train.Intersect(val));
        Assert.Empty(train.Intersect(test));
        Assert.Empty(val.Intersect(test));
        Assert.Equal(1623, train.Count + val.Count + test.Count);
    }

    [Fact]
    public void SplitDependsOnlyOnTheSplitSeed()
    {
        var a = Omniglot.Splits(MetaRun.Config.OmniglotSplit.Vinyals, 0);
        var b = Omniglot.Splits(MetaRun.Config.OmniglotSplit.Vinyals, 0);
        var c = Omniglot.Splits(MetaRun.Config.OmniglotSplit.Vinyals, 1);
        Assert.Equal(a[Split.Test], b[Split.Test]);
        Assert.NotEqual(a[Split.Test].Select(x => x.Source).Order(), c[Split.Test].Select(x => x.Source).Order());
        Assert.Equal(fx.Vinyals.Classes(Split.Train), a[Split.Train]);
    }

    [Fact]
    public void RotatedCopiesAreDistinctClassesShowingRotatedImages()
    {
        var f = fx.Vinyals;
        var train = f.Classes(Split.Train);
        Assert.Equal(train.Count, train.Distinct().Count());
        // Every meta-train character appears in all four rotations.
        Assert.All(train.GroupBy(c => c.Source), g => Assert.Equal([0, 1, 2, 3], g.Select(c => c.Rotation).Order()));

        // Find an episode with a rotated class; its pixels are np.rot90 of the stored image.
        var shape = new EpisodeShape(5, 2, 3);
        for (long i = 0; i < 50; i++)
        {
            var plan = f.Plan(Split.Train, i, shape);
            var j = Array.FindIndex(plan.Classes, c => train[c].Rotation == 1);
            if (j < 0) continue;
            using var batch = f.Sample(Split.Train, i, 1, shape);
            var support = batch.SupportX.ToArray<float>();
            var cls = train[plan.Classes[j]];
            var stored = f.Store.Image(cls.Source, plan.Images[j][0]).ToArray();
            var shown = support.AsSpan(j * 2 * 784, 784);
            for (var y = 0; y < 28; y++)
            for (var x = 0; x < 28; x++)
                Assert.Equal(stored[x * 28 + (27 - y)] / 255f, shown[y * 28 + x], 6); // counterclockwise by 90°
            Assert.NotEqual(stored.Select(v => v / 255f), shown.ToArray()); // characters are not symmetric
            return;
        }
        Assert.Fail("no rotated class in 50 episodes");
    }

    [Fact]
    public void KnownImageDecodesToKnownPixels()
    {
        using var scope = Torch.NewScope();
        using var zip = ZipFile.OpenRead(Path.Combine(fx.Root, "omniglot", "images_background.zip"));
        var entry = zip.GetEntry("images_background/Arcadian/character01/0001_01.png")!;
        var bytes = new byte[entry.Length];
        using (var s = entry.Open()) s.ReadExactly(bytes);
        var raw = Image.Decode(bytes, 1);
        Assert.Equal([1L, 105, 105], raw.Shape);
        var px = raw.ToArray<byte>();
        // Black strokes (0) on white (255), checked against an independent PNG decoder.
        Assert.All(px, v => Assert.True(v is 0 or 255));
        Assert.Equal(917, px.Count(v => v == 0));
        Assert.Equal(255, px[0]);
        Assert.Equal(0, px[19 * 105 + 50]);
        Assert.Equal(0, px[52 * 105 + 54]);
        Assert.Equal(0, px[50 * 105 + 32]);
        Assert.Equal(255, px[50 * 105 + 31]);

        // In the store: inverted (strokes high, background 0) and resized with antialiasing.
        var index = Omniglot.Characters.Single(c => c.Id == 1).Index;
        var stored = fx.Vinyals.Store.Image(index, 0).ToArray();
        var expected = F.Interpolate(raw.Unsqueeze(0).To(ScalarType.Float32), 28, 28, InterpolationMode.Bilinear, antialias: true);
        var want = (255.0 - expected + 0.5).Floor().Clamp(0, 255).To(ScalarType.UInt8).ToArray<byte>();
        Assert.Equal(want, stored);
        Assert.Equal(0, stored[0]);
        Assert.Equal(0, stored[^1]);
        Assert.True(stored.Max() > 200, $"strokes should be near 255, max is {stored.Max()}");
        // The resize keeps the ink: mean value ≈ the share of stroke pixels.
        Assert.InRange(stored.Average(v => v / 255.0), 917 / 11025.0 * 0.97, 917 / 11025.0 * 1.03);
    }

    [Fact]
    public void EpisodesHaveTheDocumentedShapeAndLabels()
    {
        var f = fx.Vinyals;
        using var batch = f.Sample(Split.Train, 0, 3, FiveOne);
        Assert.Equal([3L, 5, 1, 28, 28], batch.SupportX.Shape);
        Assert.Equal([3L, 75, 1, 28, 28], batch.QueryX.Shape);
        Assert.Equal([3L, 5], batch.SupportY.Shape);
        Assert.Equal([3L, 75], batch.QueryY.Shape);
        Assert.Equal(ScalarType.Float32, batch.SupportX.DType);
        Assert.Equal(ScalarType.Int64, batch.SupportY.DType);
        Assert.Equal(3, batch.Tasks);
        var sy = batch.SupportY.ToArray<long>();
        var qy = batch.QueryY.ToArray<long>();
        for (var t = 0; t < 3; t++)
        {
            Assert.Equal([0L, 1, 2, 3, 4], sy.AsSpan(t * 5, 5).ToArray());
            for (var j = 0; j < 5; j++) Assert.All(qy.AsSpan(t * 75 + j * 15, 15).ToArray(), v => Assert.Equal(j, v));
        }
        var x = batch.SupportX.ToArray<float>().Concat(batch.QueryX.ToArray<float>()).ToArray();
        Assert.All(x, v => Assert.InRange(v, 0f, 1f));
        Assert.Equal(1f, x.Max());
    }

    [Fact]
    public void EpisodePixelsAreTheStoredImagesOfThePlan()
    {
        var f = fx.Vinyals;
        var shape = new EpisodeShape(4, 3, 2);
        var plan = f.Plan(Split.Test, 11, shape);
        Assert.Equal(4, plan.Classes.Distinct().Count());
        Assert.All(plan.Images, imgs => Assert.Equal(5, imgs.Distinct().Count()));
        using var batch = f.Sample(Split.Test, 11, 1, shape);
        var sx = batch.SupportX.ToArray<float>();
        var qx = batch.QueryX.ToArray<float>();
        var maps = ImageTaskFamilyAccess.RotationMaps(28);
        for (var j = 0; j < 4; j++)
        {
            var cls = f.Classes(Split.Test)[plan.Classes[j]];
            for (var s = 0; s < 5; s++)
            {
                var stored = f.Store.Image(cls.Source, plan.Images[j][s]).ToArray();
                var shown = s < 3 ? sx.AsSpan((j * 3 + s) * 784, 784) : qx.AsSpan((j * 2 + s - 3) * 784, 784);
                for (var p = 0; p < 784; p++) Assert.Equal(stored[maps[cls.Rotation][p]] * (1f / 255f), shown[p]); // exactly byte × (1/255)
            }
        }
    }

    [Fact]
    public void LabelsArePermutedAcrossEpisodes()
    {
        var f = fx.Vinyals;
        var classOfLabel0 = new HashSet<int>();
        var sortedPlans = 0;
        for (long i = 0; i < 100; i++)
        {
            var plan = f.Plan(Split.Train, i, FiveOne);
            classOfLabel0.Add(plan.Classes[0]);
            if (plan.Classes.SequenceEqual(plan.Classes.Order())) sortedPlans++;
        }
        Assert.True(classOfLabel0.Count > 90, $"label 0 went to only {classOfLabel0.Count} distinct classes in 100 episodes");
        Assert.InRange(sortedPlans, 0, 5); // 1/120 of episodes are sorted by chance
    }

    [Fact]
    public void SameSeedSameEpisodesDifferentIndexOrSeedDifferentEpisodes()
    {
        using var a = fx.Vinyals.Sample(Split.Train, 40, 4, FiveOne);
        using var b = fx.Vinyals.Sample(Split.Train, 40, 4, FiveOne);
        DataTestSupport.AssertSameBatch(a, b);
        using var first = fx.First.Sample(Split.Train, 40, 4, FiveOne); // another family, same seed
        DataTestSupport.AssertSameBatch(a, first);

        // Episode i is the same whichever meta-batch it is drawn in.
        using var one = fx.Vinyals.Sample(Split.Train, 42, 1, FiveOne);
        Assert.Equal(one.SupportX.ToBytes(), a.SupportX.Narrow(0, 2, 1).Contiguous().ToBytes());
        Assert.Equal(one.QueryX.ToBytes(), a.QueryX.Narrow(0, 2, 1).Contiguous().ToBytes());

        using var c = fx.Vinyals.Sample(Split.Train, 41, 4, FiveOne);
        Assert.False(DataTestSupport.SameBatch(a, c));
        Assert.Equal(a.SupportX.Narrow(0, 1, 3).Contiguous().ToBytes(), c.SupportX.Narrow(0, 0, 3).Contiguous().ToBytes());
        using var otherSplit = fx.Vinyals.Sample(Split.Val, 40, 4, FiveOne);
        Assert.False(DataTestSupport.SameBatch(a, otherSplit));
        using var other = (ImageTaskFamily)TaskFamilies.Open(DataTestSupport.OmniglotConfig(), null, OmniglotFixture.Seed + 1, fx.Options);
        using var d = other.Sample(Split.Train, 40, 4, FiveOne);
        Assert.False(DataTestSupport.SameBatch(a, d));
    }

    [Fact]
    public void StreamIsTheSameWithAndWithoutPrefetchingAndAcrossParallelDegrees()
    {
        const int tasks = 8;
        var direct = Enumerable.Range(0, 6).Select(i => fx.Vinyals.Sample(Split.Train, 100 + i * tasks, tasks, FiveOne)).ToList();
        try
        {
            using (var prefetcher = new Prefetcher(i => fx.Vinyals.Sample(Split.Train, 100 + i * tasks, tasks, FiveOne), 0, depth: 3))
            {
                foreach (var expected in direct)
                {
                    using var got = prefetcher.Next();
                    DataTestSupport.AssertSameBatch(expected, got);
                }
            }
            foreach (var degree in new[] { 1, 2, 3, 0 })
            {
                using var f = (ImageTaskFamily)TaskFamilies.Open(DataTestSupport.OmniglotConfig(), null, OmniglotFixture.Seed,
                    new DataOptions { CacheDir = fx.Cache.Path, SamplingThreads = degree, MaxDegreeOfParallelism = degree });
                for (var i = 0; i < direct.Count; i++)
                {
                    using var got = f.Sample(Split.Train, 100 + i * tasks, tasks, FiveOne);
                    DataTestSupport.AssertSameBatch(direct[i], got);
                }
            }
        }
        finally
        {
            foreach (var b in direct) b.Dispose();
        }
    }

    [Fact]
    public void SecondLoadReadsTheCacheByteForByte()
    {
        Assert.Equal(fx.First.Store.Pixels, fx.Vinyals.Store.Pixels);
        Assert.Contains(fx.Messages, m => m.Contains("cache written"));
        Assert.DoesNotContain(fx.Messages, m => m.Contains("not usable"));
        Assert.True(fx.CachedLoadSeconds < 2, $"cached load took {fx.CachedLoadSeconds:F2} s"); // ~0.05 s; loose for a busy CI
        Assert.True(fx.CachedLoadSeconds < fx.FirstLoadSeconds);
    }

    [Fact]
    public void FlippedByteInTheOmniglotCacheIsDetected()
    {
        using var dir = new TempDir("flip");
        var copy = Path.Combine(dir.Path, Path.GetFileName(fx.CacheFile));
        File.Copy(fx.CacheFile, copy);
        var key = CacheKeyOf(copy);
        var sizes = fx.Vinyals.Store.ClassSizes;
        Assert.NotNull(ImageCache.TryLoad(copy, key, 1, 28, 28, sizes, null));
        var bytes = File.ReadAllBytes(copy);
        bytes[bytes.Length - 12345] ^= 0x10;
        File.WriteAllBytes(copy, bytes);
        var log = new List<string>();
        Assert.Null(ImageCache.TryLoad(copy, key, 1, 28, 28, sizes, log.Add));
        Assert.Contains(log, m => m.Contains("checksum") && m.Contains(copy));
    }

    /// <summary>The key stored in a cache file's header (read the way the cache writes it).</summary>
    internal static string CacheKeyOf(string path)
    {
        var b = File.ReadAllBytes(path);
        var length = BitConverter.ToInt32(b, 16);
        return System.Text.Encoding.UTF8.GetString(b, 20, length);
    }

    [Fact]
    public void ClassBatchesShowImagesOfTheirLabels()
    {
        var f = fx.Vinyals;
        var (x, y) = f.SampleClassBatch(3, 24);
        using (x)
        using (y)
        {
            Assert.Equal([24L, 1, 28, 28], x.Shape);
            var labels = y.ToArray<long>();
            var pixels = x.ToArray<float>();
            var maps = ImageTaskFamilyAccess.RotationMaps(28);
            for (var e = 0; e < 24; e++)
            {
                Assert.InRange(labels[e], 0, 4399);
                var cls = f.Classes(Split.Train)[(int)labels[e]];
                var shown = pixels.AsSpan(e * 784, 784).ToArray();
                // The example is one of the class's 20 images, turned by the class's rotation.
                Assert.Contains(Enumerable.Range(0, 20), k =>
                {
                    var stored = f.Store.Image(cls.Source, k).ToArray();
                    return Enumerable.Range(0, 784).All(p => stored[maps[cls.Rotation][p]] * (1f / 255f) == shown[p]);
                });
            }
            var (x2, y2) = f.SampleClassBatch(3, 24);
            using (x2)
            using (y2)
            {
                Assert.Equal(x.ToBytes(), x2.ToBytes());
                Assert.Equal(labels, y2.ToArray<long>());
            }
        }
    }

    [Fact]
    public void ClassTooSmallForTheEpisodeIsNamed()
    {
        var e = Assert.Throws<DataException>(() => fx.Vinyals.Sample(Split.Train, 0, 1, new EpisodeShape(5, 10, 15)));
        Assert.Contains("images_", e.Message);
        Assert.Contains("has 20 images", e.Message);
        var ways = Assert.Throws<DataException>(() => fx.Vinyals.Sample(Split.Val, 0, 1, new EpisodeShape(401, 1, 1)));
        Assert.Contains("400 classes", ways.Message);
    }
}

/// <summary>Reaches the sampler's rotation tables (internal; same maps as np.rot90).</summary>
internal static class ImageTaskFamilyAccess
{
    public static int[][] RotationMaps(int size)
    {
        var maps = new int[4][];
        for (var r = 0; r < 4; r++)
        {
            maps[r] = new int[size * size];
            for (var y = 0; y < size; y++)
            for (var x = 0; x < size; x++)
            {
                // np.rot90(a, r)[y, x] for a square a: rotate counterclockwise r times.
                var (sy, sx) = (y, x);
                for (var k = 0; k < r; k++) (sy, sx) = (sx, size - 1 - sy);
                maps[r][y * size + x] = sy * size + sx;
            }
        }
        return maps;
    }
}
