using LibTorch;
using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>
/// Sinusoid regression (Finn et al. 2017): each task is y = A·sin(x − φ) with amplitude A ~
/// U[0.1, 5.0], phase φ ~ U[0, π]; inputs x ~ U[−5, 5]; K support and Q query points (shots and
/// queries; ways is ignored, a task is one function). Tensors are float32 [tasks, K, 1] and
/// [tasks, Q, 1]; the loss is MSE. Draw order per episode: A, φ, then the K support x, then the
/// Q query x, all from the episode's own generator.
/// </summary>
public sealed class SinusoidTaskFamily(long seed) : ITaskFamily
{
    public const double AmplitudeMin = 0.1, AmplitudeMax = 5.0;
    public const double PhaseMin = 0.0, PhaseMax = Math.PI;
    public const double InputMin = -5.0, InputMax = 5.0;

    public string Name => "sinusoid";
    public bool IsRegression => Dataset.Sinusoid.IsRegression();
    public long[] InputShape => [1];
    public int ClassCount(Split split) => 0;

    /// <summary>The amplitude and phase of episode <paramref name="index"/> of a split.</summary>
    public (double Amplitude, double Phase) Task(Split split, long index)
    {
        var rng = SplitMix64.ForEpisode(seed, split, index);
        return Draw(ref rng);
    }

    private static (double Amplitude, double Phase) Draw(ref SplitMix64 rng)
    {
        var a = AmplitudeMin + (AmplitudeMax - AmplitudeMin) * rng.NextDouble();
        var p = PhaseMin + (PhaseMax - PhaseMin) * rng.NextDouble();
        return (a, p);
    }

    public MetaBatch Sample(Split split, long first, int tasks, EpisodeShape shape)
    {
        if (tasks < 1) throw new ArgumentOutOfRangeException(nameof(tasks), "a meta-batch needs at least one task");
        if (shape.Shots < 1 || shape.Queries < 0) throw new ArgumentOutOfRangeException(nameof(shape), $"bad episode shape {shape}");
        int k = shape.Shots, q = shape.Queries;
        var sx = new float[tasks * k];
        var sy = new float[tasks * k];
        var qx = new float[tasks * q];
        var qy = new float[tasks * q];
        for (var t = 0; t < tasks; t++)
        {
            var rng = SplitMix64.ForEpisode(seed, split, first + t);
            var (a, p) = Draw(ref rng);
            for (var i = 0; i < k; i++) Point(ref rng, a, p, out sx[t * k + i], out sy[t * k + i]);
            for (var i = 0; i < q; i++) Point(ref rng, a, p, out qx[t * q + i], out qy[t * q + i]);
        }
        return new MetaBatch(Torch.From(sx, tasks, k, 1), Torch.From(sy, tasks, k, 1), Torch.From(qx, tasks, q, 1), Torch.From(qy, tasks, q, 1));
    }

    private static void Point(ref SplitMix64 rng, double a, double p, out float x, out float y)
    {
        x = (float)(InputMin + (InputMax - InputMin) * rng.NextDouble());
        y = (float)(a * Math.Sin(x - p));
    }

    public void Dispose() { }
}
