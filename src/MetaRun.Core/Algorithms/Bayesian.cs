using System.Runtime.InteropServices;
using LibTorch;
using MetaRun.Data;

namespace MetaRun.Algorithms;

/// <summary>
/// What the Bayesian learners (ABML, BMAML) share: the likelihood of a task's data under one
/// weight sample, averaging predictions over samples, and noise that is a pure function of the
/// run's seed, the iteration and the episode, so results repeat at any worker count.
/// </summary>
public static class Bayesian
{
    /// <summary>
    /// −(1/n) log p(y | output): cross-entropy for classification; for regression a Gaussian of
    /// standard deviation exp(<paramref name="logNoise"/>) (a learned outer parameter), so the
    /// prediction carries its own observation noise.
    /// </summary>
    public static Tensor NegativeLogLikelihood(Objective objective, Tensor output, Tensor target, Tensor? logNoise)
    {
        if (!objective.IsRegression) return objective.Loss(output, target);
        var d = output - target;
        return (d * d * (logNoise! * -2).Exp() * 0.5 + logNoise!).Mean() + 0.5 * Math.Log(2 * Math.PI);
    }

    /// <summary>
    /// The prediction averaged over samples: for classification the log of the mean of the
    /// samples' softmax (a valid logit row: its softmax is that mean), for regression the mean output.
    /// </summary>
    public static Tensor Average(Objective objective, IReadOnlyList<Tensor> outputs)
    {
        var stacked = Torch.Stack(outputs);
        if (objective.IsRegression) return stacked.Mean(0);
        // log mean exp over samples, from log-softmax with the maximum taken out.
        var logp = F.LogSoftmax(stacked, 2);
        var max = logp.Max(0, keepDim: true);
        return (logp - max).Exp().Mean(0).Log() + max.Squeeze(0);
    }

    /// <summary>
    /// The predictive Gaussian of regression samples: their mean, and their variance plus the
    /// observation noise (the law of total variance of the mixture).
    /// </summary>
    public static (Tensor Mean, Tensor Variance) Gaussian(IReadOnlyList<Tensor> outputs, Tensor logNoise)
    {
        var stacked = Torch.Stack(outputs);
        var mean = stacked.Mean(0);
        var spread = (stacked - mean).Square().Mean(0);
        return (mean, spread + (logNoise * 2).Exp());
    }

    /// <summary>
    /// A generator for one task's noise, seeded from the run's seed, the iteration and the
    /// support set's contents: the same episode at the same iteration draws the same noise on
    /// any worker, rank or resume.
    /// </summary>
    public static Generator NoiseFor(ulong seed, long iteration, Tensor supportX)
    {
        var values = supportX.Detach().To(Device.Cpu).To(ScalarType.Float32).Contiguous().ToArray<float>();
        var hash = XxHash64.Hash(MemoryMarshal.AsBytes(values.AsSpan()), seed ^ (0x6261796573UL + (ulong)iteration * 0x9E3779B97F4A7C15UL));
        return new Generator(hash);
    }
}
