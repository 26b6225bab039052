using System.Text;
using LibTorch;

namespace MetaRun.Tests.LibTorch;

/// <summary>One float64 input of a checked function: its shape and starting values.</summary>
public sealed record GradInput(long[] Shape, double[] Data)
{
    public override string ToString() => $"[{string.Join(", ", Shape)}]";
}

/// <summary>
/// Compares autograd's gradients (Torch.Grad) with central finite differences in float64.
/// A function with a non-scalar output is checked through S(x) = Σ w ⊙ f(x) with fixed random
/// weights w, so that every output element contributes and none cancels (as Σ softmax would).
/// </summary>
public static class GradCheck
{
    public const double Eps = 1e-6;
    public const double RelTol = 1e-5;
    public const double AbsTol = 1e-7;

    public static void Check(string name, Func<Tensor[], Tensor> f, params GradInput[] inputs)
    {
        // The weights, drawn once the output's shape is known, from a seed fixed per check.
        var rng = new Random(12345);
        double[]? weights = null;
        long[]? outShape = null;

        double[][] Analytic()
        {
            using var scope = Torch.NewScope();
            var leaves = inputs.Select(i => TestSupport.F64(i.Data, i.Shape).RequiresGrad_()).ToArray();
            var y = f(leaves);
            Assert.Equal(ScalarType.Float64, y.DType);
            outShape = y.Shape;
            weights = Enumerable.Range(0, (int)y.NumElements).Select(_ => (rng.NextDouble() + 0.5) * (rng.Next(2) * 2 - 1)).ToArray();
            var s = (y * TestSupport.F64(weights, outShape)).Sum();
            var grads = Torch.Grad([s], leaves);
            return grads.Select((g, k) => g?.D() ?? throw new Xunit.Sdk.XunitException($"{name}: no gradient for input {k}")).ToArray();
        }

        double Eval(double[][] xs)
        {
            using var scope = Torch.NewScope();
            // Leaves require grad even here: a function may itself differentiate (second order).
            var leaves = inputs.Select((i, k) => TestSupport.F64(xs[k], i.Shape).RequiresGrad_()).ToArray();
            var y = f(leaves);
            Assert.Equal(outShape, y.Shape);
            return (y * TestSupport.F64(weights!, outShape!)).Sum().Item();
        }

        var analytic = Analytic();
        var x = inputs.Select(i => (double[])i.Data.Clone()).ToArray();
        var failures = new StringBuilder();
        var bad = 0;
        var checkedCount = 0;
        for (var k = 0; k < inputs.Length; k++)
        {
            Assert.Equal(inputs[k].Data.Length, analytic[k].Length);
            for (var j = 0; j < x[k].Length; j++)
            {
                var saved = x[k][j];
                x[k][j] = saved + Eps;
                var plus = Eval(x);
                x[k][j] = saved - Eps;
                var minus = Eval(x);
                x[k][j] = saved;
                var numeric = (plus - minus) / (2 * Eps);
                var a = analytic[k][j];
                checkedCount++;
                if (!(Math.Abs(a - numeric) <= AbsTol + RelTol * Math.Max(Math.Abs(a), Math.Abs(numeric))))
                {
                    if (bad++ < 8) failures.AppendLine($"  input {k} {inputs[k]} element {j}: autograd {a:R}, finite difference {numeric:R}");
                }
            }
        }
        Assert.True(checkedCount > 0, $"{name}: nothing to check");
        Assert.True(bad == 0, $"{name}: {bad} of {checkedCount} gradient entries disagree:\n{failures}");
    }
}
