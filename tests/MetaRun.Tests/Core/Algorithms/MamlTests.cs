using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;

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
    private static readonly double[] SupportX = [1, 2, -0.5], SupportY = [1, 3, 0.25];
    private static readonly double[] QueryX = [0.5, -1], QueryY = [2, 0];
    private const double W = 0.5, B = -0.2, Alpha = 0.1, Weight = 0.25;

    private static (double W, double B) Gradient(double w, double b, double[] x, double[] y)
    {
        double gw = 0, gb = 0;
        for (var i = 0; i < x.Length; i++)
        {
            var r = w * x[i] + b - y[i];
            gw += 2.0 / x.Length * r * x[i];
            gb += 2.0 / x.Length * r;
        }
        return (gw, gb);
    }

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
        static Tensor Column(double[] v) => Torch.From(v.Select(x => (float)x).ToArray(), v.Length, 1);
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
