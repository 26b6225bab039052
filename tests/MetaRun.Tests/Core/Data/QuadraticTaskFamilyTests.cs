using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Data;
using MetaRun.Models;

namespace MetaRun.Tests.Data;

/// <summary>The random quadratics of Andrychowicz et al. (2016): tasks as a function of (seed, split, index), and the loss a linear model gets on them.</summary>
public sealed class QuadraticTaskFamilyTests
{
    private static readonly EpisodeShape Shape = new(1, 5, 5);

    private static float[] Values(Tensor t) => t.Detach().Contiguous().ToArray<float>();

    [Fact]
    public void A_task_is_the_same_for_the_same_seed_split_and_index_and_differs_otherwise()
    {
        using var scope = Torch.NewScope();
        using var family = new QuadraticTaskFamily(4);
        using var a = family.Sample(Split.Train, 3, 2, Shape);
        using var b = family.Sample(Split.Train, 4, 1, Shape);
        using var again = new QuadraticTaskFamily(4).Sample(Split.Train, 3, 2, Shape);
        Assert.Equal(Values(a.SupportX), Values(again.SupportX));
        Assert.Equal(Values(a.SupportY), Values(again.SupportY));
        Assert.Equal([2L, 10, 10], a.SupportX.Shape);
        Assert.Equal([2L, 10, 1], a.SupportY.Shape);
        // Episode 4 drawn alone is the second of the pair drawn from 3.
        Assert.Equal(Values(a.SupportX)[100..], Values(b.SupportX));
        using var val = family.Sample(Split.Val, 3, 1, Shape);
        using var other = new QuadraticTaskFamily(5).Sample(Split.Train, 3, 1, Shape);
        Assert.NotEqual(Values(a.SupportX)[..100], Values(val.SupportX));
        Assert.NotEqual(Values(a.SupportX)[..100], Values(other.SupportX));
        // Support and query are the same function.
        Assert.Equal(Values(a.SupportX), Values(a.QueryX));
        Assert.Equal(Values(a.SupportY), Values(a.QueryY));
        // Standard normal entries: over 2,000 of them the mean is near 0 and the variance near 1.
        using var many = family.Sample(Split.Test, 0, 20, Shape);
        var w = Values(many.SupportX);
        var mean = w.Average(v => (double)v);
        var variance = w.Average(v => (v - mean) * (v - mean));
        Assert.InRange(mean, -0.1, 0.1);
        Assert.InRange(variance, 0.9, 1.1);
    }

    [Fact]
    public void A_linear_model_gets_the_mean_squared_residual_and_its_gradient_by_hand()
    {
        using var scope = Torch.NewScope();
        using var family = new QuadraticTaskFamily(1);
        using var batch = family.Sample(Split.Train, 0, 1, Shape);
        Mlp model;
        using (var g = new Generator(2)) model = new Mlp(10, [], 1, g, Device.Cpu);
        using var _ = model;
        var (x, y) = (batch.SupportX.Reshape(10, 10), batch.SupportY.Reshape(10, 1));
        var (wv, yv) = (Values(x), Values(y));
        var (theta, b) = (Values(model.Parameters[0]), Values(model.Parameters[1])[0]);
        var residual = new double[10];
        for (var i = 0; i < 10; i++)
        {
            double r = b - yv[i];
            for (var j = 0; j < 10; j++) r += wv[i * 10 + j] * theta[j];
            residual[i] = r;
        }
        var f = residual.Sum(r => r * r) / 10;
        var loss = new Objective(regression: true).Loss(model.Forward(x, model.Parameters), y);
        Assert.True(Math.Abs(loss.Item() - f) < 1e-5 * Math.Max(1, f), $"{loss.Item()} vs {f}");
        var grads = Torch.Grad([loss], model.Parameters);
        var gw = Values(grads[0]!);
        for (var j = 0; j < 10; j++)
        {
            var expected = Enumerable.Range(0, 10).Sum(i => 2.0 / 10 * residual[i] * wv[i * 10 + j]);
            Assert.True(Math.Abs(gw[j] - expected) < 1e-5 * Math.Max(1, Math.Abs(expected)), $"∂/∂θ{j}: {gw[j]} vs {expected}");
        }
        Assert.True(Math.Abs(Values(grads[1]!)[0] - residual.Sum() * 2 / 10) < 1e-5);
    }
}
