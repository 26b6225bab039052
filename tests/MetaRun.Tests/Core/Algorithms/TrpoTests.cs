using LibTorch;
using MetaRun.Algorithms;

namespace MetaRun.Tests.Algorithms;

/// <summary>TRPO's pieces: conjugate gradient on Fisher-vector products against a direct solve, the step size, and the line search's bounds.</summary>
public sealed class TrpoTests
{
    [Fact]
    public void Conjugate_gradient_on_Fisher_vector_products_matches_a_direct_solve_of_the_Fisher_matrix()
    {
        // A tiny policy: a Gaussian over 2 actions whose mean is W·s (W 2×2) on 3 fixed states, and a
        // learned log σ; F is the Hessian of the mean KL at the current parameters. Its products come
        // from double backward (as in the meta-RL outer step); the matrix itself from 6 of them.
        using var scope = Torch.NewScope();
        var w = Torch.From(new[] { 0.5f, -0.2f, 0.1f, 0.8f }, 2, 2).RequiresGrad_();
        var logStd = Torch.From(new[] { -0.3f, 0.2f }, 2).RequiresGrad_();
        var states = Torch.From(new[] { 1f, 0.5f, -0.7f, 0.3f, 0.2f, -1.1f }, 3, 2);
        Tensor Mean() => states.MatMul(w.Transpose(0, 1));
        var oldMean = Mean().Detach();
        var oldLogStd = logStd.Detach();
        var kl = PolicyGradient.Kl(oldMean, oldLogStd, Mean(), logStd).Mean();
        var g = Torch.Grad([kl], [w, logStd], createGraph: true);
        double[] Product(double[] v)
        {
            var dot = (g[0]! * Torch.From(v[..4].Select(x => (float)x).ToArray(), 2, 2)).Sum() + (g[1]! * Torch.From(v[4..].Select(x => (float)x).ToArray(), 2)).Sum();
            var hv = Torch.Grad([dot], [w, logStd], retainGraph: true);
            return [.. hv[0]!.ToArray<float>().Concat(hv[1]!.ToArray<float>()).Select(x => (double)x)];
        }
        var f = new double[6, 6];
        for (var j = 0; j < 6; j++)
        {
            var e = new double[6];
            e[j] = 1;
            var col = Product(e);
            for (var i = 0; i < 6; i++) f[i, j] = col[i];
        }
        // Hand check of one entry: ∂²KL/∂(log σ_0)² = 2 at the old policy.
        Assert.Equal(2, f[4, 4], 4);
        var b = new double[] { 0.3, -1, 0.5, 0.2, 0.7, -0.4 };
        var direct = PolicyGradient.SolvePositiveDefinite(f, b, 0)!;
        var cg = Trpo.ConjugateGradient(Product, b, iterations: 10);
        for (var i = 0; i < 6; i++) Assert.Equal(direct[i], cg[i], 3);
    }

    [Fact]
    public void The_full_step_reaches_the_KL_bound_under_the_quadratic_model()
    {
        var s = new double[] { 1, 2 };
        var fs = new double[] { 3, 1 }; // sᵀFs = 5
        var step = Trpo.FullStep(s, fs, 0.01);
        var scale = step[0] / s[0];
        Assert.Equal(0.01, 0.5 * scale * scale * Trpo.Dot(s, fs), 12);
    }

    [Fact]
    public void The_line_search_keeps_the_largest_step_that_improves_within_the_KL_bound()
    {
        // Loss falls with the step; KL grows as its square and exceeds 0.01 beyond fraction 0.5.
        var tried = new List<double>();
        var r = Trpo.LineSearch(f => { tried.Add(f); return (-f, 0.04 * f * f); }, 0, 0.01);
        Assert.NotNull(r);
        Assert.True(r.Value.Kl <= 0.01);
        Assert.True(r.Value.Fraction <= 0.5 && r.Value.Fraction > 0.5 * Trpo.BacktrackRatio);
        Assert.All(tried.Take(tried.Count - 1), f => Assert.True(0.04 * f * f > 0.01));
    }

    [Fact]
    public void The_line_search_refuses_every_step_that_does_not_improve()
    {
        var calls = 0;
        Assert.Null(Trpo.LineSearch(f => { calls++; return (f, 0); }, 0, 0.01));
        Assert.Equal(Trpo.MaxBacktracks, calls);
        Assert.Null(Trpo.LineSearch(_ => (double.NaN, 0), 0, 0.01));
    }
}
