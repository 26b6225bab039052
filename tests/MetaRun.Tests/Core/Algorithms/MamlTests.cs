using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;

using static MetaRun.Tests.Algorithms.LinearTask;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// MAML's and first-order MAML's task gradients on a model small enough to differentiate by
/// hand: y = w·x + b, squared error, one inner step of size α. With θ = (w, b),
///   θ' = θ − α ∇L_s(θ),   dL_q(θ')/dθ = (I − α ∇²L_s(θ)) ∇L_q(θ')
/// (the scalar form L_q'(θ')·(1 − α L_s''(θ)) for two weights); first order drops the Hessian.
/// For the mean squared error over points (x_i, y_i) with residuals r_i = w x_i + b − y_i:
///   ∇L = (2/n) Σ r_i (x_i, 1),   ∇²L = (2/n) Σ [[x_i², x_i], [x_i, 1]].
/// </summary>
public class MamlTests
{
    /// <summary>The task gradient worked out by hand, times the task's weight.</summary>
    private static (double W, double B) ByHand(bool firstOrder)
    {
        var gs = Gradient(W, B, SupportX, SupportY);
        var gq = Gradient(W - Alpha * gs.W, B - Alpha * gs.B, QueryX, QueryY);
        if (firstOrder) return (Weight * gq.W, Weight * gq.B);
        double hww = 0, hwb = 0, hbb = 2;
        foreach (var x in SupportX)
        {
            hww += 2.0 / SupportX.Length * x * x;
            hwb += 2.0 / SupportX.Length * x;
        }
        return (Weight * (gq.W - Alpha * (hww * gq.W + hwb * gq.B)), Weight * (gq.B - Alpha * (hwb * gq.W + hbb * gq.B)));
    }

    private static (double W, double B) ByMaml(bool firstOrder)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(1);
        var model = new Mlp(1, [], 1, g, Device.Cpu);
        using (Torch.NoGrad())
        {
            model.Parameters[0].CopyFrom(Torch.Full([1, 1], W));
            model.Parameters[1].CopyFrom(Torch.Full([1], B));
        }
        var task = new Episode(Column(SupportX), Column(SupportY), Column(QueryX), Column(QueryY));
        using var maml = new Maml(model, new Objective(regression: true), Alpha, innerSteps: 1, testInnerSteps: 1, firstOrder);
        var grads = maml.TaskGradient(task, Weight).Gradients;
        return (grads[0]!.Item(), grads[1]!.Item());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TaskGradientMatchesTheHandDerivedMetaGradient(bool firstOrder)
    {
        var (expected, actual) = (ByHand(firstOrder), ByMaml(firstOrder));
        Assert.Equal(expected.W, actual.W, 5);
        Assert.Equal(expected.B, actual.B, 5);
    }

    [Fact]
    public void FirstOrderDiffersFromSecondOrderByTheHessianTerm()
    {
        var (second, first) = (ByHand(false), ByHand(true));
        Assert.True(Math.Abs(second.W - first.W) > 1e-3, "the example must make the Hessian term visible");
        var (maml, fomaml) = (ByMaml(false), ByMaml(true));
        Assert.Equal(second.W - first.W, maml.W - fomaml.W, 5);
    }
}
