using LibTorch;
using static MetaRun.Tests.LibTorch.TestSupport;

namespace MetaRun.Tests.LibTorch;

/// <summary>
/// MAML's meta-gradient: d/dθ L_query(θ − α ∇θ L_support(θ)), differentiating through the inner
/// gradient (createGraph), against finite differences of the same scalar function.
/// </summary>
public sealed class SecondOrderTests
{
    private const double Alpha = 0.4;

    // conv2d(1→2, 3×3, stride 2, padding 1) → batch_norm (training) → relu → flatten → linear(18→3).
    private static Tensor Net(IReadOnlyList<Tensor> p, Tensor x)
    {
        var h = F.Conv2d(x, p[0], p[1], stride: 2, padding: 1);
        h = F.BatchNorm(h, null, null, p[2], p[3], training: true);
        return F.Linear(F.Relu(h).Flatten(1), p[4], p[5]);
    }

    private static Tensor QueryLossAfterOneStep(Tensor[] theta, Tensor xs, Tensor ys, Tensor xq, Tensor yq)
    {
        var support = F.CrossEntropy(Net(theta, xs), ys);
        var grads = Torch.Grad([support], theta, createGraph: true);
        var adapted = theta.Select((p, i) => p - Alpha * grads[i]!).ToArray();
        return F.CrossEntropy(Net(adapted, xq), yq);
    }

    [Fact]
    public void MetaGradientThroughTheInnerStepMatchesFiniteDifferences()
    {
        var rng = new Random(99);
        double[] R(int n, double scale) => Enumerable.Range(0, n).Select(_ => (rng.NextDouble() * 2 - 1) * scale).ToArray();
        var xsData = R(6 * 36, 1);
        var xqData = R(6 * 36, 1);
        long[] ysData = [0, 1, 2, 0, 1, 2];
        long[] yqData = [2, 2, 1, 0, 0, 1];

        GradInput[] theta =
        [
            new([2, 1, 3, 3], R(18, 0.6)),
            new([2], R(2, 0.3)),
            new([2], R(2, 0.3).Select(v => 1 + v).ToArray()),
            new([2], R(2, 0.3)),
            new([3, 18], R(54, 0.4)),
            new([3], R(3, 0.3)),
        ];

        GradCheck.Check("maml meta-gradient", p =>
            QueryLossAfterOneStep(p, F64(xsData, 6, 1, 6, 6), I64(ysData), F64(xqData, 6, 1, 6, 6), I64(yqData)), theta);
    }

    [Fact]
    public void MetaGradientDiffersFromTheFirstOrderApproximation()
    {
        // Guards against createGraph being ignored: with it, the Hessian term changes the gradient.
        using var scope = Torch.NewScope();
        using var gen = new Generator(3);
        var w = Torch.Randn([3, 4], ScalarType.Float64, generator: gen).RequiresGrad_();
        var x = Torch.Randn([5, 4], ScalarType.Float64, generator: gen);
        var y = I64(0, 1, 2, 0, 1);
        var inner = F.CrossEntropy(F.Linear(x, w), y);
        var g = Torch.Grad(inner, w, createGraph: true);
        Assert.True(g.RequiresGrad);
        var outer = F.CrossEntropy(F.Linear(x, w - 0.5 * g), y);
        var full = Torch.Grad(outer, w).D();

        var adaptedFo = (w.Detach() - 0.5 * g.Detach()).RequiresGrad_();
        var firstOrder = Torch.Grad(F.CrossEntropy(F.Linear(x, adaptedFo), y), adaptedFo).D();
        Assert.True(full.Zip(firstOrder).Max(p => Math.Abs(p.First - p.Second)) > 1e-4);
    }
}
