using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Evaluation;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Tests.Algorithms;


/// <summary>
/// An easy generated task family: each class is a Gaussian blob in R^Dim around a fixed random
/// mean; only the first Informative coordinates tell classes apart, the rest are loud noise, so
/// a network must learn which features to trust (random features do poorly). An episode draws N classes of its split (labels permuted per episode, as the image
/// families do) and K + Q points per class. Train, val and test use disjoint classes. Also a
/// class-batch source over the training classes for the baseline.
/// </summary>
public sealed class BlobTaskFamily : ITaskFamily, IClassBatchSource
{
    public const int Dim = 16;
    public const int Informative = 4;
    private const double Nuisance = 2.0;
    private readonly long seed;
    private readonly double noise;
    private readonly Dictionary<Split, float[][]> means = new();

    public BlobTaskFamily(long seed = 7, int trainClasses = 40, int testClasses = 20, double noise = 0.3)
    {
        (this.seed, this.noise) = (seed, noise);
        var rng = SplitMix64.ForEpisode(seed, Split.Train, -1, salt: 99);
        foreach (var (split, n) in new[] { (Split.Train, trainClasses), (Split.Val, testClasses), (Split.Test, testClasses) })
            means[split] = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, Dim).Select(d => d < Informative ? (float)(1.5 * Gaussian(ref rng)) : 0f).ToArray()).ToArray();
    }

    public string Name => "blobs";
    public bool IsRegression => false;
    public long[] InputShape => [Dim];
    public int ClassCount(Split split) => means[split].Length;

    private static double Gaussian(ref SplitMix64 rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    private void Point(ref SplitMix64 rng, float[] mean, float[] x, int offset)
    {
        for (var d = 0; d < Dim; d++) x[offset + d] = (float)(mean[d] + (d < Informative ? noise : Nuisance) * Gaussian(ref rng));
    }

    public MetaBatch Sample(Split split, long first, int tasks, EpisodeShape shape)
    {
        int n = shape.Ways, k = shape.Shots, q = shape.Queries;
        var sx = new float[tasks * n * k * Dim];
        var qx = new float[tasks * n * q * Dim];
        var sy = new long[tasks * n * k];
        var qy = new long[tasks * n * q];
        var classes = new int[n];
        for (var t = 0; t < tasks; t++)
        {
            var rng = SplitMix64.ForEpisode(seed, split, first + t);
            rng.SampleDistinct(means[split].Length, classes);
            for (var j = 0; j < n; j++)
            {
                for (var s = 0; s < k; s++)
                {
                    var e = (t * n + j) * k + s;
                    Point(ref rng, means[split][classes[j]], sx, e * Dim);
                    sy[e] = j;
                }
                for (var s = 0; s < q; s++)
                {
                    var e = (t * n + j) * q + s;
                    Point(ref rng, means[split][classes[j]], qx, e * Dim);
                    qy[e] = j;
                }
            }
        }
        return new MetaBatch(Torch.From(sx, tasks, n * k, Dim), Torch.From(sy, tasks, n * k), Torch.From(qx, tasks, n * q, Dim), Torch.From(qy, tasks, n * q));
    }

    public (Tensor X, Tensor Y) SampleClassBatch(long index, int size)
    {
        var rng = SplitMix64.ForEpisode(seed, Split.Train, index, salt: 5);
        var x = new float[size * Dim];
        var y = new long[size];
        for (var e = 0; e < size; e++)
        {
            var c = rng.NextInt(means[Split.Train].Length);
            Point(ref rng, means[Split.Train][c], x, e * Dim);
            y[e] = c;
        }
        return (Torch.From(x, size, Dim), Torch.From(y, size));
    }

    public void Dispose() { }
}

/// <summary>Builds a learner on an MLP over blobs and runs the trainer's outer loop on it (without the run folder).</summary>
public sealed class BlobRun : IDisposable
{
    public BlobTaskFamily Family { get; } = new();
    public AlgorithmConfig Algorithm { get; }
    public IMetaLearner Learner { get; }
    public EpisodeShape Shape { get; }

    public BlobRun(AlgorithmConfig algorithm, EpisodeShape shape, int[]? hidden = null, long seed = 1)
    {
        Algorithm = algorithm;
        Shape = shape;
        var outputs = AlgorithmRegistry.Get(algorithm.Name).Head switch
        {
            HeadKind.PerTrainingClass => Family.ClassCount(Split.Train),
            HeadKind.None => 1,
            _ => shape.Ways,
        };
        using var g = new Generator((ulong)seed);
        var model = new Mlp(BlobTaskFamily.Dim, hidden ?? [32, 32], outputs, g, Device.Cpu);
        Learner = AlgorithmRegistry.Create(algorithm, model, new Objective(regression: false), Family);
    }

    /// <summary>Outer steps 1..iterations through the trainer's own meta-iteration.</summary>
    public void Train(int iterations)
    {
        using var optimizer = MetaIteration.CreateOptimizer(Algorithm, Learner.OuterParameters);
        var mb = Algorithm.MetaBatchSize;
        for (var it = 1; it <= iterations; it++)
        {
            using var scope = Torch.NewScope();
            using var batch = Learner is ITrainingBatchSource own ? own.TrainingBatch(it - 1) : Family.Sample(Split.Train, (it - 1) * mb, mb, Shape);
            MetaIteration.Run(Learner, Algorithm, optimizer, batch, it, new ExecutionPlan(Device.Cpu, Workers: 1, Threads: 1, Batched: false));
        }
    }

    public double TestAccuracy(int episodes = 100) =>
        EpisodeScoring.ForEachEpisode(Family, Split.Test, 0, episodes, Shape, 25, Device.Cpu, 1, (task, _) => Learner.Evaluate(task)).Average(s => s.Accuracy);

    public void Dispose() => Learner.Dispose();
}

/// <summary>A model and a task small enough to check an update against a step computed by hand.</summary>
internal static class HandChecks
{
    public static float[] Values(Tensor t) => t.Detach().Contiguous().ToArray<float>();

    public static void Close(Tensor expected, Tensor? actual, double tol = 1e-5)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.Shape, actual!.Shape);
        var (e, a) = (Values(expected), Values(actual));
        for (var i = 0; i < e.Length; i++) Assert.True(Math.Abs(e[i] - a[i]) <= tol * (1 + Math.Abs(e[i])), $"element {i}: expected {e[i]}, got {a[i]}");
    }

    /// <summary>A 3-input linear classifier (an MLP with no hidden layer: all head) or with one hidden layer.</summary>
    public static Mlp Tiny(int[] hidden, int outputs = 2, ulong seed = 3)
    {
        using var g = new Generator(seed);
        return new Mlp(3, hidden, outputs, g, Device.Cpu);
    }

    public static Episode TinyTask(long seed = 11)
    {
        using var g = new Generator((ulong)seed);
        var sx = Torch.Randn([4, 3], generator: g);
        var qx = Torch.Randn([6, 3], generator: g);
        return new Episode(sx, Torch.From(new long[] { 0, 1, 0, 1 }, 4), qx, Torch.From(new long[] { 1, 0, 1, 0, 1, 0 }, 6));
    }

    public static Tensor[] Grad(Tensor loss, IReadOnlyList<Tensor> wrt, bool createGraph = false) =>
        Torch.Grad([loss], wrt, createGraph: createGraph).Select(g => g!).ToArray();
}
