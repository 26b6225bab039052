using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Data;

namespace MetaRun.Tests.Algorithms;

/// <summary>The policy-gradient pieces: returns-to-go, the least-squares baseline, the Gaussian log-likelihood, and the surrogate's gradient.</summary>
public sealed class PolicyGradientTests
{
    private static Trajectories Random(int count, int horizon, int seed, Func<int, int, float[], double> reward)
    {
        var rng = new System.Random(seed);
        var obs = new float[count * horizon * 2];
        var actions = new float[count * horizon * 2];
        var rewards = new float[count * horizon];
        var lengths = new int[count];
        for (var n = 0; n < count; n++)
        {
            lengths[n] = horizon - rng.Next(horizon / 2);
            for (var t = 0; t < lengths[n]; t++)
            {
                var row = n * horizon + t;
                for (var j = 0; j < 2; j++)
                {
                    obs[row * 2 + j] = (float)(rng.NextDouble() * 2 - 1);
                    actions[row * 2 + j] = (float)(rng.NextDouble() * 2 - 1);
                }
                rewards[row] = (float)reward(n, t, obs[(row * 2)..(row * 2 + 2)]);
            }
        }
        return new Trajectories(count, horizon, 2, 2, obs, actions, rewards, lengths);
    }

    [Fact]
    public void Returns_to_go_discount_the_rewards_after_each_step_and_stop_at_the_length()
    {
        var d = new Trajectories(1, 4, 2, 2, new float[8], new float[8], [1, 2, 3, 99], [3]);
        var r = PolicyGradient.ReturnsToGo(d, 0.5);
        Assert.Equal([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 0], r);
    }

    [Fact]
    public void The_linear_baseline_recovers_a_target_that_is_linear_in_its_features()
    {
        var d = Random(6, 100, 1, (_, _, _) => 0);
        var truth = new[] { 0.5, -1.0, 2.0, 0.25, 3.0, -2.0, 1.5, 0.75 };
        var targets = new double[d.Count * d.Horizon];
        for (var n = 0; n < d.Count; n++)
            for (var t = 0; t < d.Lengths[n]; t++)
                targets[n * d.Horizon + t] = PolicyGradient.Features(d, n, t).Zip(truth, (f, w) => f * w).Sum();
        var fitted = PolicyGradient.FitBaseline(d, targets);
        for (var i = 0; i < truth.Length; i++) Assert.True(Math.Abs(truth[i] - fitted[i]) < 0.02, $"weight {i}: {fitted[i]}, truth {truth[i]}");
    }

    [Fact]
    public void The_baseline_solves_the_ridge_normal_equations()
    {
        var d = Random(5, 20, 2, (_, t, o) => Math.Sin(3 * o[0]) + t * t * 0.01);
        var targets = PolicyGradient.ReturnsToGo(d);
        var w = PolicyGradient.FitBaseline(d, targets);
        var k = w.Length;
        var dot = new double[k];
        for (var n = 0; n < d.Count; n++)
            for (var t = 0; t < d.Lengths[n]; t++)
            {
                var f = PolicyGradient.Features(d, n, t);
                var residual = targets[n * d.Horizon + t] - f.Zip(w, (a, b) => a * b).Sum();
                for (var i = 0; i < k; i++) dot[i] += f[i] * residual;
            }
        // Φᵀ(y − Φw) = λw: the residual is orthogonal to the features up to the ridge term.
        for (var i = 0; i < k; i++) Assert.True(Math.Abs(dot[i] - PolicyGradient.BaselineRidge * w[i]) < 1e-8, $"Φᵀ(y − Φw) − λw = {dot[i] - PolicyGradient.BaselineRidge * w[i]}");
    }

    [Fact]
    public void The_log_likelihood_is_the_diagonal_Gaussian_density()
    {
        using var scope = Torch.NewScope();
        var logp = PolicyGradient.LogProb(Torch.From(new[] { 0.3f, -1.2f }, 1, 2), Torch.From(new[] { 0.1f, -1f }, 1, 2), Torch.From(new[] { -0.5f, 0.2f }, 2)).Item();
        double Log(double a, double m, double ls) => -0.5 * Math.Pow((a - m) / Math.Exp(ls), 2) - ls - 0.5 * Math.Log(2 * Math.PI);
        Assert.Equal(Log(0.3, 0.1, -0.5) + Log(-1.2, -1, 0.2), logp, 5);
    }

    [Fact]
    public void The_surrogate_gradient_matches_finite_differences_of_the_expected_return_on_a_one_step_environment()
    {
        // One step: reward −(a − 0.7)², a ~ N(μ, σ²) with μ and log σ the parameters. The expected
        // return −((μ − 0.7)² + σ²) has the exact gradient the REINFORCE surrogate estimates; with many
        // samples and no advantage normalisation the surrogate's gradient must agree with its
        // finite differences within the sampling error.
        using var scope = Torch.NewScope();
        var mu = Torch.From(new[] { 0.2f }, 1).RequiresGrad_();
        var logStd = Torch.From(new[] { -0.4f }, 1).RequiresGrad_();
        const int n = 200_000;
        var rng = new SplitMix64(42);
        var actions = new float[n];
        var rewards = new float[n];
        var sigma = Math.Exp(-0.4);
        for (var i = 0; i < n; i++)
        {
            var z = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            actions[i] = (float)(0.2 + sigma * z);
            rewards[i] = -(actions[i] - 0.7f) * (actions[i] - 0.7f);
        }
        var d = new Trajectories(n, 1, 1, 1, new float[n], actions, rewards, Enumerable.Repeat(1, n).ToArray());
        var returns = PolicyGradient.ReturnsToGo(d);
        var mean = returns.Average();
        // The constant baseline (mean return) keeps the estimator unbiased and its variance low.
        var batch = new PolicyBatch(Torch.Zeros([n, 1]), Torch.From(actions, n, 1), Torch.From(returns.Select(r => (float)(r - mean)).ToArray(), n));
        var loss = PolicyGradient.Surrogate(batch, mu.Expand(n, 1), logStd);
        var grads = Torch.Grad([loss], [mu, logStd]);
        double Expected(double m, double ls) => -((m - 0.7) * (m - 0.7) + Math.Exp(2 * ls));
        const double h = 1e-4;
        var dMu = -(Expected(0.2 + h, -0.4) - Expected(0.2 - h, -0.4)) / (2 * h);
        var dLs = -(Expected(0.2, -0.4 + h) - Expected(0.2, -0.4 - h)) / (2 * h);
        // Within about five standard errors of the 200,000-sample estimate.
        Assert.InRange(grads[0]!.Item(), dMu - 0.025, dMu + 0.025);
        Assert.InRange(grads[1]!.Item(), dLs - 0.025, dLs + 0.025);
        Assert.True(Math.Abs(dMu) > 0.5 && Math.Abs(dLs) > 0.5, "a check of sizeable gradients");
    }
}
