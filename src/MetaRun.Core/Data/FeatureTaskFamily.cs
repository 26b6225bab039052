using LibTorch;

namespace MetaRun.Data;

/// <summary>
/// N-way K-shot Q-query episodes over feature vectors, drawn exactly as
/// <see cref="ImageTaskFamily"/> draws them: from the episode's own generator
/// <see cref="SplitMix64.ForEpisode"/>, N classes of the split without replacement (the j-th
/// drawn gets label j), then K + Q examples of each without replacement, supports first. Inputs
/// are [tasks, N·K, D] float32.
/// </summary>
public sealed class FeatureTaskFamily : ITaskFamily, IClassBatchSource, ISplitClasses
{
    private readonly Dictionary<Split, FeatureDataset.FeatureClass[]> splits;
    private readonly long seed;
    private volatile bool disposed;

    internal FeatureTaskFamily(IReadOnlyList<FeatureDataset.FeatureClass> classes, long seed)
    {
        this.seed = seed;
        Dim = classes[0].Table.Dim;
        splits = new[] { Split.Train, Split.Val, Split.Test }.ToDictionary(s => s, s => classes.Where(c => c.Split == s).ToArray());
    }

    public string Name => "features";
    public bool IsRegression => false;
    public int Dim { get; }
    public long[] InputShape => [Dim];
    public string Unit => "examples";

    public int ClassCount(Split split) => splits[split].Length;

    public IReadOnlyList<string> ClassNames(Split split) => [.. splits[split].Select(c => c.Name)];

    public (string Name, int Size) SmallestClass(Split split)
    {
        var classes = splits[split];
        if (classes.Length == 0) return ("", 0);
        var smallest = classes.MinBy(c => c.Rows.Length)!;
        return (smallest.Name, smallest.Rows.Length);
    }

    public MetaBatch Sample(Split split, long first, int tasks, EpisodeShape shape)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (tasks < 1) throw new ArgumentOutOfRangeException(nameof(tasks), "a meta-batch needs at least one task");
        if (shape.Ways < 1 || shape.Shots < 1 || shape.Queries < 0) throw new ArgumentOutOfRangeException(nameof(shape), $"bad episode shape {shape}");
        var classes = splits[split];
        if (shape.Ways > classes.Length)
            throw new DataException($"features {ImageTaskFamily.Lower(split)} split has {classes.Length} classes; {shape.Ways}-way episodes need at least {shape.Ways}");
        int n = shape.Ways, k = shape.Shots, q = shape.Queries, d = Dim;
        var (name, size) = SmallestClass(split);
        if (size < k + q)
            throw new DataException($"features class '{name}' ({ImageTaskFamily.Lower(split)} split) has {size} examples; {k}-shot {q}-query episodes need {k + q} per class");
        var sx = new float[(long)tasks * n * k * d];
        var qx = new float[(long)tasks * n * q * d];
        var sy = new long[tasks * n * k];
        var qy = new long[tasks * n * q];
        var chosen = new int[n];
        var picks = new int[k + q];
        for (var t = 0; t < tasks; t++)
        {
            var rng = SplitMix64.ForEpisode(seed, split, first + t);
            rng.SampleDistinct(classes.Length, chosen);
            for (var j = 0; j < n; j++)
            {
                var c = classes[chosen[j]];
                rng.SampleDistinct(c.Rows.Length, picks);
                for (var s = 0; s < k + q; s++)
                {
                    var src = c.Table.Values.AsSpan(c.Rows[picks[s]] * d, d);
                    if (s < k)
                    {
                        var e = ((long)t * n + j) * k + s;
                        src.CopyTo(sx.AsSpan((int)(e * d), d));
                        sy[e] = j;
                    }
                    else
                    {
                        var e = ((long)t * n + j) * q + (s - k);
                        src.CopyTo(qx.AsSpan((int)(e * d), d));
                        qy[e] = j;
                    }
                }
            }
        }
        return new MetaBatch(Torch.From(sx, tasks, n * k, d), Torch.From(sy, tasks, n * k), Torch.From(qx, tasks, n * q, d), Torch.From(qy, tasks, n * q));
    }

    /// <summary>A mini-batch over all training classes (the baseline's): a uniformly drawn class, then one of its examples, with replacement; label = the class's index in the training split.</summary>
    public (Tensor X, Tensor Y) SampleClassBatch(long index, int size)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var classes = splits[Split.Train];
        var x = new float[(long)size * Dim];
        var y = new long[size];
        var rng = SplitMix64.ForEpisode(seed, Split.Train, index, salt: 0x62617463680000UL);
        for (var e = 0; e < size; e++)
        {
            var label = rng.NextInt(classes.Length);
            var c = classes[label];
            c.Table.Values.AsSpan(c.Rows[rng.NextInt(c.Rows.Length)] * Dim, Dim).CopyTo(x.AsSpan(e * Dim, Dim));
            y[e] = label;
        }
        return (Torch.From(x, size, Dim), Torch.From(y, size));
    }

    public void Dispose() => disposed = true;
}
