using LibTorch;

namespace MetaRun.Data;

public enum Split
{
    Train,
    Val,
    Test,
}

/// <summary>N-way, K-shot (support examples per class), Q-query (query examples per class). For regression Ways is 1.</summary>
public readonly record struct EpisodeShape(int Ways, int Shots, int Queries);

/// <summary>
/// A meta-batch of episodes as CPU tensors owned by this object: inputs [tasks, N*K, C, H, W]
/// (regression: [tasks, K, 1]) and targets [tasks, N*K] int64 labels 0..N−1 (regression:
/// [tasks, K, 1] float32); the query set likewise with N*Q examples.
/// </summary>
public sealed class MetaBatch(Tensor supportX, Tensor supportY, Tensor queryX, Tensor queryY) : IDisposable
{
    public Tensor SupportX { get; } = supportX;
    public Tensor SupportY { get; } = supportY;
    public Tensor QueryX { get; } = queryX;
    public Tensor QueryY { get; } = queryY;
    public int Tasks => (int)SupportX.Size(0);

    public void Dispose()
    {
        SupportX.Dispose();
        SupportY.Dispose();
        QueryX.Dispose();
        QueryY.Dispose();
    }
}

/// <summary>
/// A distribution of tasks over one data set. Episode <c>i</c> of a split is a pure function of
/// (seed, split, i): the same whatever the thread count, prefetching or resumption.
/// </summary>
public interface ITaskFamily : IDisposable
{
    string Name { get; }
    bool IsRegression { get; }
    /// <summary>Shape of one input example: [C, H, W] for images, [1] for sinusoid.</summary>
    long[] InputShape { get; }
    /// <summary>Classes available in a split (0 for regression).</summary>
    int ClassCount(Split split);
    /// <summary>Episodes first .. first+tasks−1 of the split, stacked into one meta-batch.</summary>
    MetaBatch Sample(Split split, long first, int tasks, EpisodeShape shape);
}

/// <summary>A classification family whose splits' classes are known once opened (what the episode checks ask).</summary>
public interface ISplitClasses
{
    string Name { get; }
    int ClassCount(Split split);
    /// <summary>The split's class with the fewest examples: its name and size.</summary>
    (string Name, int Size) SmallestClass(Split split);
    /// <summary>What an example is called in messages ("images").</summary>
    string Unit => "images";
}
