using LibTorch;
using MetaRun.Data;

namespace MetaRun.Algorithms;

/// <summary>
/// A batch of policy-gradient data as tensors: the valid steps of a task's trajectories,
/// observations [M, O], actions [M, A] and advantages [M].
/// </summary>
public sealed record PolicyBatch(Tensor Observations, Tensor Actions, Tensor Advantages) : IDisposable
{
    public PolicyBatch DetachFromScope()
    {
        Observations.DetachFromScope();
        Actions.DetachFromScope();
        Advantages.DetachFromScope();
        return this;
    }

    public void Dispose()
    {
        Observations.Dispose();
        Actions.Dispose();
        Advantages.Dispose();
    }
}

/// <summary>
/// The pieces of vanilla policy gradient (REINFORCE with a baseline) as MAML's RL experiments
/// use them: discounted returns-to-go, a linear feature baseline fitted per task by least squares
/// (Duan et al. 2016's), advantages centred and scaled, and a diagonal Gaussian policy's
/// log-likelihood and KL divergence.
/// </summary>
public static class PolicyGradient
{
    /// <summary>The discount of the returns-to-go (the official code's 0.99).</summary>
    public const double Discount = 0.99;

    /// <summary>Ridge term of the baseline's normal equations (as Duan et al.'s baseline), raised tenfold while they are singular.</summary>
    public const double BaselineRidge = 1e-5;

    /// <summary>R_t = Σ_{k≥t} γ^{k−t} r_k over each trajectory's valid steps, [N, T] row-major (zero past the length).</summary>
    public static double[] ReturnsToGo(Trajectories d, double discount = Discount)
    {
        var r = new double[d.Count * d.Horizon];
        for (var n = 0; n < d.Count; n++)
        {
            double acc = 0;
            for (var t = d.Lengths[n] - 1; t >= 0; t--)
            {
                acc = d.Rewards[n * d.Horizon + t] + discount * acc;
                r[n * d.Horizon + t] = acc;
            }
        }
        return r;
    }

    /// <summary>The baseline's features of one step: observation clipped to ±10, its square, t/100 and its square and cube, 1.</summary>
    public static double[] Features(Trajectories d, int n, int t)
    {
        var o = d.ObservationSize;
        var f = new double[2 * o + 4];
        for (var j = 0; j < o; j++)
        {
            var v = Math.Clamp(d.Observations[(n * d.Horizon + t) * o + j], -10.0, 10.0);
            f[j] = v;
            f[o + j] = v * v;
        }
        var a = t / 100.0;
        (f[2 * o], f[2 * o + 1], f[2 * o + 2], f[2 * o + 3]) = (a, a * a, a * a * a, 1);
        return f;
    }

    /// <summary>
    /// Least-squares weights w of the baseline b(s_t) = w·φ(s_t) fitted to <paramref name="targets"/>
    /// over the valid steps: (ΦᵀΦ + λI) w = Φᵀy, solved by Cholesky in float64. By hand: the
    /// system is (2O+4)², and the binding has no linear solver; λ grows tenfold while ΦᵀΦ + λI is not positive definite.
    /// </summary>
    public static double[] FitBaseline(Trajectories d, double[] targets)
    {
        var k = 2 * d.ObservationSize + 4;
        var a = new double[k, k];
        var b = new double[k];
        for (var n = 0; n < d.Count; n++)
            for (var t = 0; t < d.Lengths[n]; t++)
            {
                var f = Features(d, n, t);
                var y = targets[n * d.Horizon + t];
                for (var i = 0; i < k; i++)
                {
                    b[i] += f[i] * y;
                    for (var j = 0; j < k; j++) a[i, j] += f[i] * f[j];
                }
            }
        for (var ridge = BaselineRidge; ridge < 1e6; ridge *= 10)
            if (SolvePositiveDefinite(a, b, ridge) is { } w && w.All(double.IsFinite)) return w;
        return new double[k];
    }

    /// <summary>x with (A + ridge·I) x = b by Cholesky, or null where A + ridge·I is not positive definite.</summary>
    public static double[]? SolvePositiveDefinite(double[,] a, double[] b, double ridge)
    {
        var k = b.Length;
        var l = new double[k, k];
        for (var i = 0; i < k; i++)
            for (var j = 0; j <= i; j++)
            {
                var s = a[i, j] + (i == j ? ridge : 0);
                for (var m = 0; m < j; m++) s -= l[i, m] * l[j, m];
                if (i == j)
                {
                    if (s <= 0) return null;
                    l[i, i] = Math.Sqrt(s);
                }
                else l[i, j] = s / l[j, j];
            }
        var z = new double[k];
        for (var i = 0; i < k; i++)
        {
            var s = b[i];
            for (var m = 0; m < i; m++) s -= l[i, m] * z[m];
            z[i] = s / l[i, i];
        }
        var x = new double[k];
        for (var i = k - 1; i >= 0; i--)
        {
            var s = z[i];
            for (var m = i + 1; m < k; m++) s -= l[m, i] * x[m];
            x[i] = s / l[i, i];
        }
        return x;
    }

    /// <summary>
    /// The task's batch: returns-to-go minus the baseline fitted on these same trajectories,
    /// centred and scaled to unit deviation over the valid steps (as the official code's
    /// center_adv), so one inner step of size α moves the policy alike whatever the reward scale.
    /// </summary>
    public static PolicyBatch Batch(Trajectories d, bool normalize = true)
    {
        var returns = ReturnsToGo(d);
        var w = FitBaseline(d, returns);
        var valid = d.Lengths.Sum();
        int o = d.ObservationSize, act = d.ActionSize;
        var obs = new float[valid * o];
        var actions = new float[valid * act];
        var adv = new double[valid];
        var m = 0;
        for (var n = 0; n < d.Count; n++)
            for (var t = 0; t < d.Lengths[n]; t++, m++)
            {
                var row = n * d.Horizon + t;
                Array.Copy(d.Observations, row * o, obs, m * o, o);
                Array.Copy(d.Actions, row * act, actions, m * act, act);
                var f = Features(d, n, t);
                double b = 0;
                for (var i = 0; i < f.Length; i++) b += w[i] * f[i];
                adv[m] = returns[row] - b;
            }
        if (normalize && valid > 0)
        {
            var mean = adv.Average();
            var std = Math.Sqrt(adv.Sum(v => (v - mean) * (v - mean)) / valid);
            for (var i = 0; i < valid; i++) adv[i] = (adv[i] - mean) / (std + 1e-8);
        }
        return new PolicyBatch(Torch.From(obs, valid, o), Torch.From(actions, valid, act), Torch.From(adv.Select(v => (float)v).ToArray(), valid));
    }

    /// <summary>log N(a; μ, diag(exp(logStd))²) per row: [M].</summary>
    public static Tensor LogProb(Tensor actions, Tensor mean, Tensor logStd)
    {
        var z = (actions - mean) * (-logStd).Exp();
        return (z.Square() * -0.5 - logStd).Sum(-1) - 0.5 * Math.Log(2 * Math.PI) * actions.Size(-1);
    }

    /// <summary>KL(N(μ₀, σ₀²) ‖ N(μ, σ²)) per row for diagonal Gaussians: [M].</summary>
    public static Tensor Kl(Tensor mean0, Tensor logStd0, Tensor mean, Tensor logStd)
    {
        var var0 = (logStd0 * 2).Exp();
        var var1 = (logStd * 2).Exp();
        return ((var0 + (mean0 - mean).Square()) / (var1 * 2) + (logStd - logStd0) - 0.5).Sum(-1);
    }

    /// <summary>The REINFORCE surrogate −mean_t log π(a_t|s_t) Â_t, whose gradient is the policy gradient's negative.</summary>
    public static Tensor Surrogate(PolicyBatch b, Tensor mean, Tensor logStd) => -(LogProb(b.Actions, mean, logStd) * b.Advantages).Mean();
}
