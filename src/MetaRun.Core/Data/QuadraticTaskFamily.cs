using LibTorch;
using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>
/// Random quadratic functions, the first experiment of Andrychowicz et al. (2016, §3.1): a task is
/// f(θ) = ‖Wθ − y‖² with W (10 × 10) and y (10) of IID standard normal entries. As a regression
/// task its examples are W's rows with targets y, so a linear model's mean squared error over the
/// 10 rows is f/10 (the model's bias, if it has one, is one more coordinate of θ). The support and
/// query sets are both the 10 rows: the function optimised is the one scored, whatever
/// data.*.shots and queries say. Draw order from the episode's own generator: W row by row, then y.
/// </summary>
public sealed class QuadraticTaskFamily(long seed) : ITaskFamily
{
    public const int Dimension = 10;

    public string Name => "quadratic";
    public bool IsRegression => Dataset.Quadratic.IsRegression();
    public long[] InputShape => [Dimension];
    public int ClassCount(Split split) => 0;

    public MetaBatch Sample(Split split, long first, int tasks, EpisodeShape shape)
    {
        if (tasks < 1) throw new ArgumentOutOfRangeException(nameof(tasks), "a meta-batch needs at least one task");
        const int d = Dimension;
        var (w, y) = (new float[tasks * d * d], new float[tasks * d]);
        for (var t = 0; t < tasks; t++)
        {
            var rng = SplitMix64.ForEpisode(seed, split, first + t);
            for (var i = 0; i < d * d; i++) w[t * d * d + i] = (float)Normal(ref rng);
            for (var i = 0; i < d; i++) y[t * d + i] = (float)Normal(ref rng);
        }
        return new MetaBatch(Torch.From(w, tasks, d, d), Torch.From(y, tasks, d, 1), Torch.From(w, tasks, d, d), Torch.From(y, tasks, d, 1));
    }

    /// <summary>Box–Muller from two uniforms (1 − u keeps the logarithm finite).</summary>
    private static double Normal(ref SplitMix64 rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    public void Dispose() { }
}
