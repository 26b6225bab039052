using System.Buffers;
using System.Numerics;
using LibTorch;
using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>A class of a split: a source class of the store, seen rotated counterclockwise by Rotation × 90°.</summary>
public readonly record struct SplitClass(int Source, int Rotation);

/// <summary>Which classes and images one episode uses (what <see cref="ImageTaskFamily.Sample"/> draws).</summary>
/// <param name="Classes">Indices into the split's class list; episode label j is Classes[j].</param>
/// <param name="Images">Per label, Shots + Queries distinct image indices within the source class: supports first.</param>
public sealed record EpisodePlan(int[] Classes, int[][] Images);

/// <summary>
/// N-way K-shot Q-query classification episodes over an <see cref="ImageStore"/>. Each episode
/// draws N classes of the split without replacement, then K + Q images of each class without
/// replacement, from its own generator <see cref="SplitMix64.ForEpisode"/>; the j-th class drawn
/// gets label j, so labels are a random permutation of the classes. Examples are grouped by
/// class: class 0's K supports, class 1's, …; queries likewise. Pixels become floats as
/// byte × Scale[c] + Offset[c] per channel.
/// </summary>
public sealed class ImageTaskFamily : ITaskFamily, IClassBatchSource, ISplitClasses
{
    private readonly Dictionary<Split, SplitClass[]> splits;
    private readonly string[] sourceNames;
    private readonly float[] scale;
    private readonly float[] offset;
    private readonly long seed;
    private readonly DataOptions options;
    private readonly int[][] rotationMaps;
    // rotated[r]: the whole store turned by r × 90°, made once when a split uses rotation r, so
    // sampling copies every image with the same vectorized loop (rotating on the fly through
    // the index map costs about a third of Omniglot's sampling rate).
    private readonly byte[]?[] rotated = new byte[4][];
    private volatile bool disposed;
    // Splits whose episodes draw all their classes from one group (an Omniglot alphabet): the
    // group's members as indices into the split's classes.
    private readonly Dictionary<Split, int[][]> groups;
    // The training split's domains (Omniglot alphabets, a folder data set's domain folders), for
    // domain-shift learners (MLDG): names and members as indices into the training split's classes.
    private readonly string[] domainNames;
    private readonly int[][] domains;

    internal ImageTaskFamily(Dataset dataset, ImageStore store, Dictionary<Split, SplitClass[]> splits, string[] sourceNames,
        float[] scale, float[] offset, long seed, DataOptions options, Dictionary<Split, int[][]>? groups = null,
        IReadOnlyList<(string Name, int[] Classes)>? trainDomains = null)
    {
        this.groups = groups ?? [];
        domainNames = trainDomains?.Select(d => d.Name).ToArray() ?? [];
        domains = trainDomains?.Select(d => d.Classes).ToArray() ?? [];
        Name = dataset.Yaml();
        IsRegression = dataset.IsRegression();
        Store = store;
        this.splits = splits;
        this.sourceNames = sourceNames;
        this.scale = scale;
        this.offset = offset;
        this.seed = seed;
        this.options = options;
        rotationMaps = store.Height == store.Width ? RotationMaps(store.Height) : [];
        foreach (var r in splits.Values.SelectMany(c => c).Select(c => c.Rotation).Where(r => r != 0).Distinct())
        {
            if (rotationMaps.Length == 0) throw new ArgumentException("rotations need square images");
            var map = rotationMaps[r];
            var turned = GC.AllocateUninitializedArray<byte>(store.Pixels.Length);
            var planes = store.ImageCount * store.Channels;
            Parallel.For(0, (planes + 1023) / 1024, options.Parallel, block => Turn(store.Pixels, turned, map, block * 1024, Math.Min(planes, block * 1024 + 1024)));
            rotated[r] = turned;
        }
    }

    public string Name { get; }
    public bool IsRegression { get; }
    public long[] InputShape => [Store.Channels, Store.Height, Store.Width];
    public ImageStore Store { get; }
    public long Seed => seed;

    /// <summary>Per-channel float = byte × Scale + Offset.</summary>
    public IReadOnlyList<float> Scale => scale;
    public IReadOnlyList<float> Offset => offset;

    public int ClassCount(Split split) => splits[split].Length;
    public IReadOnlyList<SplitClass> Classes(Split split) => splits[split];

    public string ClassName(SplitClass c) => c.Rotation == 0 ? sourceNames[c.Source] : $"{sourceNames[c.Source]} rotated {c.Rotation * 90}°";

    public EpisodePlan Plan(Split split, long index, EpisodeShape shape)
    {
        Validate(split, 1, shape);
        var rng = SplitMix64.ForEpisode(seed, split, index);
        var classes = new int[shape.Ways];
        ChooseClasses(ref rng, split, classes);
        var images = new int[shape.Ways][];
        for (var j = 0; j < shape.Ways; j++)
        {
            images[j] = new int[shape.Shots + shape.Queries];
            rng.SampleDistinct(Store.ClassSizes[splits[split][classes[j]].Source], images[j]);
        }
        return new EpisodePlan(classes, images);
    }

    public MetaBatch Sample(Split split, long first, int tasks, EpisodeShape shape)
    {
        Validate(split, tasks, shape);
        return Build(tasks, shape, (t, sx, sy, qx, qy) => Fill(split, first + t, t, shape, sx, sy, qx, qy));
    }

    /// <summary>Whether the training split is divided into domains (<see cref="Domains"/>).</summary>
    public bool HasDomains => domains.Length > 0;

    /// <summary>The training split's domains, in a fixed order: names ("Arcadian", a folder's domain folder).</summary>
    public IReadOnlyList<string> Domains => domainNames;

    /// <summary>Domain <paramref name="domain"/>'s classes, as indices into the training split.</summary>
    public IReadOnlyList<int> DomainClasses(int domain) => domains[domain];

    // Domain episodes get their own stream, apart from the family's ordinary training episodes.
    private const ulong DomainSalt = 0x646F6D61696E0000UL;

    /// <summary>
    /// One training episode whose N classes all come from domain <paramref name="domain"/>, as a
    /// one-task meta-batch: like <see cref="Sample"/>, a pure function of (seed, domain, index),
    /// drawn from the generator <see cref="SplitMix64.ForEpisode"/> salted by the domain.
    /// </summary>
    public MetaBatch SampleDomain(int domain, long index, EpisodeShape shape)
    {
        Validate(Split.Train, 1, shape);
        if (domain < 0 || domain >= domains.Length)
            throw new ArgumentOutOfRangeException(nameof(domain), $"{Name} has {domains.Length} training domains");
        var members = domains[domain];
        if (members.Length < shape.Ways)
            throw new DataException($"{Name} training domain '{domainNames[domain]}' has {members.Length} classes; {shape.Ways}-way episodes need at least {shape.Ways}");
        return Build(1, shape, (t, sx, sy, qx, qy) =>
        {
            var rng = SplitMix64.ForEpisode(seed, Split.Train, index, DomainSalt + (ulong)domain);
            var chosen = new int[shape.Ways];
            rng.SampleDistinct(members.Length, chosen);
            for (var j = 0; j < chosen.Length; j++) chosen[j] = members[chosen[j]];
            FillChosen(ref rng, Split.Train, chosen, t, shape, sx, sy, qx, qy);
        });
    }

    private delegate void FillTask(int task, float[] sx, long[] sy, float[] qx, long[] qy);

    private MetaBatch Build(int tasks, EpisodeShape shape, FillTask fill)
    {
        int n = shape.Ways, k = shape.Shots, q = shape.Queries;
        var pix = Store.ImageBytes;
        var sxLen = (long)tasks * n * k * pix;
        var qxLen = (long)tasks * n * q * pix;
        if (sxLen > Array.MaxLength || qxLen > Array.MaxLength)
            throw new DataException($"a meta-batch of {tasks} × {n}-way {k}-shot {q}-query {Store.Channels}×{Store.Height}×{Store.Width} episodes is too large; sample fewer tasks at a time");
        var sx = ArrayPool<float>.Shared.Rent((int)sxLen);
        var qx = ArrayPool<float>.Shared.Rent((int)qxLen);
        var sy = new long[tasks * n * k];
        var qy = new long[tasks * n * q];
        try
        {
            if (tasks > 1 && options.SamplingDegree > 1)
                Parallel.For(0, tasks, new ParallelOptions { MaxDegreeOfParallelism = options.SamplingDegree }, t => fill(t, sx, sy, qx, qy));
            else
                for (var t = 0; t < tasks; t++) fill(t, sx, sy, qx, qy);
            long c = Store.Channels, h = Store.Height, w = Store.Width;
            var supportX = Torch.From(new ReadOnlySpan<float>(sx, 0, (int)sxLen), tasks, n * k, c, h, w);
            var supportY = Torch.From(sy, tasks, n * k);
            var queryX = Torch.From(new ReadOnlySpan<float>(qx, 0, (int)qxLen), tasks, n * q, c, h, w);
            var queryY = Torch.From(qy, tasks, n * q);
            return new MetaBatch(supportX, supportY, queryX, queryY);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(sx);
            ArrayPool<float>.Shared.Return(qx);
        }
    }

    private void Validate(Split split, int tasks, EpisodeShape shape)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (tasks < 1) throw new ArgumentOutOfRangeException(nameof(tasks), "a meta-batch needs at least one task");
        if (shape.Ways < 1 || shape.Shots < 1 || shape.Queries < 0)
            throw new ArgumentOutOfRangeException(nameof(shape), $"bad episode shape {shape}");
        var classes = splits[split];
        if (shape.Ways > classes.Length)
            throw new DataException($"{Name} {Lower(split)} split has {classes.Length} classes; {shape.Ways}-way episodes need at least {shape.Ways}");
        if (groups.TryGetValue(split, out var all) && !all.Any(g => g.Length >= shape.Ways))
            throw new DataException($"{Name} {Lower(split)} split: no alphabet has {shape.Ways} classes for within-alphabet episodes (the largest has {all.Max(g => g.Length)})");
        var need = shape.Shots + shape.Queries;
        var (smallest, size) = Smallest(split);
        if (size < need)
            throw new DataException($"{Name} class '{ClassName(classes[smallest])}' ({Lower(split)} split) has {size} images; {shape.Shots}-shot {shape.Queries}-query episodes need {need} per class");
    }

    /// <summary>The split's class with the fewest images: its name and image count.</summary>
    public (string Name, int Size) SmallestClass(Split split)
    {
        var (index, size) = Smallest(split);
        return (ClassName(splits[split][index]), size);
    }

    private readonly Dictionary<Split, (int Index, int Size)> smallestCache = [];

    private (int Index, int Size) Smallest(Split split)
    {
        lock (smallestCache)
        {
            if (smallestCache.TryGetValue(split, out var s)) return s;
            var classes = splits[split];
            var best = (Index: 0, Size: int.MaxValue);
            for (var i = 0; i < classes.Length; i++)
            {
                var size = Store.ClassSizes[classes[i].Source];
                if (size < best.Size) best = (i, size);
            }
            return smallestCache[split] = best;
        }
    }

    /// <summary>
    /// The episode's classes (indices into the split): N distinct ones of the split, or, where the
    /// split is grouped, a uniformly drawn group among those with at least N classes, then N of it.
    /// </summary>
    private void ChooseClasses(ref SplitMix64 rng, Split split, Span<int> chosen)
    {
        if (!groups.ContainsKey(split))
        {
            rng.SampleDistinct(splits[split].Length, chosen);
            return;
        }
        var eligible = EligibleGroups(split, chosen.Length);
        var group = eligible[rng.NextInt(eligible.Length)];
        rng.SampleDistinct(group.Length, chosen);
        for (var j = 0; j < chosen.Length; j++) chosen[j] = group[chosen[j]];
    }

    /// <summary>The groups of a grouped split with at least <paramref name="ways"/> classes, in group order.</summary>
    public int[][] EligibleGroups(Split split, int ways) => [.. groups[split].Where(g => g.Length >= ways)];

    /// <summary>Whether a split's episodes come from one group each (Omniglot within-alphabet).</summary>
    public bool IsGrouped(Split split) => groups.ContainsKey(split);

    internal static string Lower(Split split) => split.ToString().ToLowerInvariant();

    private void Fill(Split split, long index, int t, EpisodeShape shape, float[] sx, long[] sy, float[] qx, long[] qy)
    {
        var rng = SplitMix64.ForEpisode(seed, split, index);
        Span<int> chosen = shape.Ways <= 256 ? stackalloc int[shape.Ways] : new int[shape.Ways];
        ChooseClasses(ref rng, split, chosen);
        FillChosen(ref rng, split, chosen, t, shape, sx, sy, qx, qy);
    }

    /// <summary>Task t's examples: for each chosen class (label j), K + Q distinct images drawn from <paramref name="rng"/>.</summary>
    private void FillChosen(ref SplitMix64 rng, Split split, ReadOnlySpan<int> chosen, int t, EpisodeShape shape, float[] sx, long[] sy, float[] qx, long[] qy)
    {
        int n = shape.Ways, k = shape.Shots, q = shape.Queries;
        var pix = Store.ImageBytes;
        var classes = splits[split];
        Span<int> picks = k + q <= 256 ? stackalloc int[k + q] : new int[k + q];
        for (var j = 0; j < n; j++)
        {
            var c = classes[chosen[j]];
            rng.SampleDistinct(Store.ClassSizes[c.Source], picks);
            for (var s = 0; s < k + q; s++)
            {
                var image = Store.ClassStart[c.Source] + picks[s];
                long e;
                Span<float> dst;
                if (s < k)
                {
                    e = ((long)t * n + j) * k + s;
                    dst = sx.AsSpan((int)(e * pix), pix);
                    sy[e] = j;
                }
                else
                {
                    e = ((long)t * n + j) * q + (s - k);
                    dst = qx.AsSpan((int)(e * pix), pix);
                    qy[e] = j;
                }
                Convert(image, dst, c.Rotation);
            }
        }
    }

    /// <summary>dst plane i = src plane i read through the rotation map, for planes first .. end − 1.</summary>
    private static unsafe void Turn(byte[] src, byte[] dst, int[] map, int first, int end)
    {
        var plane = map.Length;
        if ((long)end * plane > src.Length || dst.Length != src.Length) throw new ArgumentOutOfRangeException(nameof(end));
        fixed (byte* s0 = src)
        fixed (byte* d0 = dst)
        fixed (int* m = map)
        {
            for (var i = first; i < end; i++)
            {
                var s = s0 + (long)i * plane;
                var d = d0 + (long)i * plane;
                for (var p = 0; p < plane; p++) d[p] = s[m[p]];
            }
        }
    }

    /// <summary>For each rotation r (0..3) and output pixel, the input pixel it shows.</summary>
    internal static int[][] RotationMaps(int size)
    {
        var maps = new int[4][];
        for (var r = 0; r < 4; r++)
        {
            var m = new int[size * size];
            for (var i = 0; i < size; i++)
            for (var j = 0; j < size; j++)
            {
                var (y, x) = r switch
                {
                    0 => (i, j),
                    1 => (j, size - 1 - i),
                    2 => (size - 1 - i, size - 1 - j),
                    _ => (size - 1 - j, i),
                };
                m[i * size + j] = y * size + x;
            }
            maps[r] = m;
        }
        return maps;
    }

    /// <summary>Image <paramref name="index"/> of the store as floats, per channel, turned counterclockwise by rotation × 90° (np.rot90).</summary>
    private void Convert(int index, Span<float> dst, int rotation)
    {
        var pix = Store.ImageBytes;
        var src = (rotation == 0 ? Store.Pixels : rotated[rotation]!).AsSpan(index * pix, pix);
        var plane = Store.Height * Store.Width;
        for (var c = 0; c < Store.Channels; c++)
            ToFloat(src.Slice(c * plane, plane), dst.Slice(c * plane, plane), scale[c], offset[c]);
    }

    /// <summary>dst[i] = src[i] × scale + offset (vectorized; the scalar tail computes the same).</summary>
    internal static void ToFloat(ReadOnlySpan<byte> src, Span<float> dst, float scale, float offset)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && src.Length >= Vector<byte>.Count)
        {
            var vs = new Vector<float>(scale);
            var vo = new Vector<float>(offset);
            var step = Vector<byte>.Count;
            var quarter = Vector<float>.Count;
            for (; i + step <= src.Length; i += step)
            {
                var b = new Vector<byte>(src[i..]);
                Vector.Widen(b, out var lo, out var hi);
                Vector.Widen(lo, out var a0, out var a1);
                Vector.Widen(hi, out var a2, out var a3);
                var d = dst[i..];
                (Vector.ConvertToSingle(a0) * vs + vo).CopyTo(d);
                (Vector.ConvertToSingle(a1) * vs + vo).CopyTo(d[quarter..]);
                (Vector.ConvertToSingle(a2) * vs + vo).CopyTo(d[(2 * quarter)..]);
                (Vector.ConvertToSingle(a3) * vs + vo).CopyTo(d[(3 * quarter)..]);
            }
        }
        for (; i < src.Length; i++) dst[i] = src[i] * scale + offset;
    }

    /// <summary>
    /// A mini-batch over all training classes (IClassBatchSource): each example is a uniformly
    /// drawn class, then a uniformly drawn image of it (with replacement), from the batch's own
    /// generator; label = the class's index in the training split.
    /// </summary>
    public (Tensor X, Tensor Y) SampleClassBatch(long index, int size)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var classes = splits[Split.Train];
        var pix = Store.ImageBytes;
        var x = new float[(long)size * pix];
        var y = new long[size];
        var rng = SplitMix64.ForEpisode(seed, Split.Train, index, salt: 0x62617463680000UL);
        for (var e = 0; e < size; e++)
        {
            var label = rng.NextInt(classes.Length);
            var c = classes[label];
            Convert(Store.ClassStart[c.Source] + rng.NextInt(Store.ClassSizes[c.Source]), x.AsSpan(e * pix, pix), c.Rotation);
            y[e] = label;
        }
        return (Torch.From(x, size, Store.Channels, Store.Height, Store.Width), Torch.From(y, size));
    }

    public void Dispose() => disposed = true;
}
