using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Data;

/// <summary>
/// A folder data set's domain level (train/DOMAIN/CLASS/) and MLDG's domain draws on it: every
/// image of domain d is one gray level, so where a sampled image came from can be read off its pixels.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class FolderDomainTests : IDisposable
{
    private const int DomainCount = 5, ClassesPerDomain = 3, ImagesPerClass = 3;
    private readonly string dir = TestPaths.NewTempDir("folder-domains");
    private readonly string? oldCache = Environment.GetEnvironmentVariable("METARUN_CACHE_DIR");
    private string Root => Path.Combine(dir, "images");

    public FolderDomainTests()
    {
        Environment.SetEnvironmentVariable("METARUN_CACHE_DIR", Path.Combine(dir, "cache"));
        for (var d = 0; d < DomainCount; d++)
            for (var c = 0; c < ClassesPerDomain; c++)
                WriteClass(Path.Combine(Root, "train", $"dom{d}", $"c{c}"), Level(d));
        for (var c = 0; c < 3; c++)
        {
            WriteClass(Path.Combine(Root, "val", $"v{c}"), (byte)(10 + c));
            WriteClass(Path.Combine(Root, "test", $"t{c}"), (byte)(15 + c));
        }
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("METARUN_CACHE_DIR", oldCache);
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }

    private static byte Level(int domain) => (byte)(30 + 50 * domain);

    private static void WriteClass(string path, byte level)
    {
        Directory.CreateDirectory(path);
        for (var i = 0; i < ImagesPerClass; i++)
        {
            using var t = Torch.From(Enumerable.Repeat(level, 16 * 16).ToArray(), 1, 16, 16);
            File.WriteAllBytes(Path.Combine(path, $"img{i}.png"), Image.EncodePng(t));
        }
    }

    private DataConfig Data(string? root = null) => new()
    {
        Dataset = Dataset.Folder, Root = root ?? Root, ImageSize = 16,
        Train = new EpisodeConfig { Ways = 2, Shots = 1, Queries = 2 }, Test = new EpisodeConfig { Ways = 2, Shots = 1, Queries = 2 },
    };

    private static readonly EpisodeShape Shape = new(2, 1, 2);

    /// <summary>The domain an image [C, H, W] of the family was drawn from, read off its first pixel.</summary>
    private static int DomainOf(ImageTaskFamily family, Tensor image)
    {
        var x = image.Contiguous().ToArray<float>()[0];
        var level = (x - family.Offset[0]) / family.Scale[0];
        return (int)Math.Round((level - 30) / 50);
    }

    [Fact]
    public void DomainFoldersBecomeTheTrainingDomainsAndEpisodesStayInTheirDomain()
    {
        using var family = FolderDataset.Open(Data(), seed: 4, DataOptions.Default);
        Assert.True(family.HasDomains);
        Assert.Equal(Enumerable.Range(0, DomainCount).Select(d => $"dom{d}"), family.Domains);
        for (var d = 0; d < DomainCount; d++)
            Assert.All(family.DomainClasses(d), i => Assert.StartsWith($"train/dom{d}/c", family.ClassName(family.Classes(Split.Train)[i])));
        Assert.Equal(["val/v0", "val/v1", "val/v2"], family.Classes(Split.Val).Select(family.ClassName));
        for (var d = 0; d < DomainCount; d++)
            for (var i = 0; i < 5; i++)
            {
                using var a = family.SampleDomain(d, i, Shape);
                using var b = family.SampleDomain(d, i, Shape);
                Assert.Equal(a.SupportX.Contiguous().ToArray<float>(), b.SupportX.Contiguous().ToArray<float>());
                Assert.Equal(a.QueryY.Contiguous().ToArray<long>(), b.QueryY.Contiguous().ToArray<long>());
                Assert.Equal([0L, 1L], a.SupportY.Contiguous().ToArray<long>());
                foreach (var x in new[] { a.SupportX, a.QueryX })
                    for (var e = 0; e < x.Size(1); e++) Assert.Equal(d, DomainOf(family, x.Narrow(1, e, 1)));
            }
        // The ordinary episodes are unchanged by the domain level: any training classes.
        using var ordinary = family.Sample(Split.Train, 0, 2, Shape);
        Assert.Equal([2L, 2L, 3L, 16L, 16L], ordinary.SupportX.Shape);
    }

    [Fact]
    public void AFolderWithoutADomainLevelHasNoDomainsAndMixingLevelsIsAnError()
    {
        var flat = Path.Combine(dir, "flat");
        for (var c = 0; c < 3; c++)
        {
            WriteClass(Path.Combine(flat, "train", $"c{c}"), 40);
            WriteClass(Path.Combine(flat, "test", $"t{c}"), 50);
        }
        using (var family = FolderDataset.Open(Data(flat), seed: 4, DataOptions.Default)) Assert.False(family.HasDomains);

        var mixed = Path.Combine(dir, "mixed");
        WriteClass(Path.Combine(mixed, "train", "alpha", "c0"), 40);
        WriteClass(Path.Combine(mixed, "train", "c1"), 40);
        var e = Assert.Throws<DataException>(() => FolderDataset.ReadLayout(mixed, Data(mixed)));
        Assert.Contains("mixes domain folders ('alpha' holds class folders) with class folders ('c1' holds images)", e.Message);
    }

    [Fact]
    public void MldgTasksDrawDistinctDomainsDeterministicallyAndHoldTheLastOut()
    {
        using var family = FolderDataset.Open(Data(), seed: 4, DataOptions.Default);
        Mldg Learner()
        {
            using var g = new Generator(1);
            return new Mldg(new Mlp(3, [4], 1, g, Device.Cpu), new Objective(false), family, Shape, domains: 3, tasks: 4, 0.1, 1, 0, 1, seed: 9);
        }
        using var a = Learner();
        using var b = Learner();
        var heldOut = new HashSet<int>();
        for (var index = 0L; index < 12; index++)
        {
            using var batch = a.TrainingBatch(index);
            using var again = b.TrainingBatch(index);
            Assert.Equal([4L, 3 * 2L, 3L, 16L, 16L], batch.SupportX.Shape);
            Assert.Equal([4L, 3 * 4L, 3L, 16L, 16L], batch.QueryX.Shape);
            Assert.Equal(batch.QueryX.Contiguous().ToArray<float>(), again.QueryX.Contiguous().ToArray<float>());
            for (var t = 0; t < 4; t++)
            {
                var domains = a.DomainsOf(index, t);
                Assert.Equal(domains, b.DomainsOf(index, t));
                Assert.Equal(3, domains.Distinct().Count());
                Assert.DoesNotContain(domains[^1], domains[..^1]);
                heldOut.Add(domains[^1]);
                // Domain-major blocks, domain d's labels offset by d·N, its images from its own domain.
                Assert.Equal([0L, 1, 2, 3, 4, 5], batch.SupportY.Narrow(0, t, 1).Contiguous().ToArray<long>());
                Assert.Equal([0L, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5], batch.QueryY.Narrow(0, t, 1).Contiguous().ToArray<long>());
                for (var e = 0; e < 12; e++) Assert.Equal(domains[e / 4], DomainOf(family, batch.QueryX.Narrow(0, t, 1).Narrow(1, e, 1)));
                for (var e = 0; e < 6; e++) Assert.Equal(domains[e / 2], DomainOf(family, batch.SupportX.Narrow(0, t, 1).Narrow(1, e, 1)));
            }
        }
        // Over 48 draws every domain was held out at some point.
        Assert.Equal(DomainCount, heldOut.Count);
    }

    private string Config(string root, params string[] extra)
    {
        var path = Path.Combine(dir, $"mldg-{Path.GetFileName(root)}.yaml");
        File.WriteAllText(path, $$"""
            name: folder-mldg
            seed: 3
            threads: 1
            workers: 2
            data:
              dataset: folder
              root: {{root}}
              image_size: 16
              train: {ways: 2, shots: 1, queries: 2}
              test: {ways: 2, shots: 1, queries: 2}
            model: {filters: 8}
            algorithm: {name: mldg, domains: 3, inner_lr: 0.1, test_inner_steps: 2, iterations: 3, meta_batch_size: 2{{string.Concat(extra.Select(e => ", " + e))}}}
            eval: {interval: 3, episodes: 4}
            """);
        return path;
    }

    [Fact]
    public void MldgTrainsAndEvaluatesOnDomainFoldersAndRefusesAFolderWithout()
    {
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", Config(Root), "--out", run);
        Assert.True(code == 0, err);
        foreach (var steps in new[] { "2", "0" })
        {
            (code, _, err) = CliRunner.Run("eval", "--checkpoint", run, "--episodes", "4", "--out", Path.Combine(dir, $"eval{steps}.json"), "--set", $"algorithm.test_inner_steps={steps}");
            Assert.True(code == 0, err);
            Assert.Contains($"\"inner_steps\": {steps}", File.ReadAllText(Path.Combine(dir, $"eval{steps}.json")));
        }

        var flat = Path.Combine(dir, "flat2");
        for (var c = 0; c < 3; c++)
        {
            WriteClass(Path.Combine(flat, "train", $"c{c}"), 40);
            WriteClass(Path.Combine(flat, "val", $"v{c}"), 45);
            WriteClass(Path.Combine(flat, "test", $"t{c}"), 50);
        }
        (code, _, err) = CliRunner.Run("train", Config(flat), "--out", Path.Combine(dir, "run-flat"));
        Assert.Equal(2, code);
        // One line, after the data layer's progress lines.
        Assert.Contains("metarun: algorithm.name: mldg holds training domains out, but this folder data set has none; put its training classes in domain folders (train/DOMAIN/CLASS/", err.Trim().Split('\n')[^1]);

        // More domains per task than the data has: the key is named.
        (code, _, err) = CliRunner.Run("train", Config(Root), "--out", Path.Combine(dir, "run-many"), "--set", "algorithm.domains=6");
        Assert.Equal(2, code);
        Assert.Contains("algorithm.domains: 6 domains per task, but the folder training split has 5 domains", err);
    }
}
