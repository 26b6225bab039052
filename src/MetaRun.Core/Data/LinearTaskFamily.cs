using LibTorch;
using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>
/// Linear regression, the worked example of the introductions to meta-learning: each task is
/// y = a·x + ε with its own slope a ~ U[0.5, 2.5] (mean 1.5), inputs x ~ U[−1, 1] and noise
/// ε ~ N(0, 0.1²). One inner step of MAML on a line maps the slope w to
/// w + c·(a − w) with c = 2α·mean(x²) independent of a, so the query loss after the step is
/// (1 − c)²(w − a)² on average and the best initialization is the mean slope, E[a] = 1.5.
/// Shapes and draw order as <see cref="SinusoidTaskFamily"/>: a, then the K support and Q query
/// points (x, then ε), from the episode's own generator.
/// </summary>
public sealed class LinearTaskFamily(long seed) : ITaskFamily
{
    public const double SlopeMin = 0.5, SlopeMax = 2.5, Noise = 0.1;

    public string Name => "linear";
    public bool IsRegression => Dataset.Linear.IsRegression();
    public long[] InputShape => [1];
    public int ClassCount(Split split) => 0;

    public MetaBatch Sample(Split split, long first, int tasks, EpisodeShape shape)
    {
        if (tasks < 1) throw new ArgumentOutOfRangeException(nameof(tasks), "a meta-batch needs at least one task");
        int k = shape.Shots, q = shape.Queries;
        var (sx, sy, qx, qy) = (new float[tasks * k], new float[tasks * k], new float[tasks * q], new float[tasks * q]);
        for (var t = 0; t < tasks; t++)
        {
            var rng = SplitMix64.ForEpisode(seed, split, first + t);
            var a = SlopeMin + (SlopeMax - SlopeMin) * rng.NextDouble();
            for (var i = 0; i < k; i++) Point(ref rng, a, out sx[t * k + i], out sy[t * k + i]);
            for (var i = 0; i < q; i++) Point(ref rng, a, out qx[t * q + i], out qy[t * q + i]);
        }
        return new MetaBatch(Torch.From(sx, tasks, k, 1), Torch.From(sy, tasks, k, 1), Torch.From(qx, tasks, q, 1), Torch.From(qy, tasks, q, 1));
    }

    private static void Point(ref SplitMix64 rng, double a, out float x, out float y)
    {
        var xi = -1 + 2 * rng.NextDouble();
        // Box–Muller from two uniforms (1 − u keeps the logarithm finite).
        var noise = Noise * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        (x, y) = ((float)xi, (float)(a * xi + noise));
    }

    public void Dispose() { }
}
