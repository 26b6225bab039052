using LibTorch;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// A task small enough to differentiate by hand, shared by the tests of the learners that take
/// gradient steps on it: y = w·x + b with squared error, three support and two query points, the
/// weights (W, B), an inner step size and a task weight; ∇L = (2/n) Σ r_i (x_i, 1) with
/// residuals r_i = w x_i + b − y_i.
/// </summary>
internal static class LinearTask
{
    public static readonly double[] SupportX = [1, 2, -0.5], SupportY = [1, 3, 0.25];
    public static readonly double[] QueryX = [0.5, -1], QueryY = [2, 0];
    public const double W = 0.5, B = -0.2, Alpha = 0.1, Weight = 0.25;

    public static (double W, double B) Gradient(double w, double b, double[] x, double[] y)
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

    public static Tensor Column(double[] v) => Torch.From(v.Select(x => (float)x).ToArray(), v.Length, 1);
}
