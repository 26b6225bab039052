namespace MetaRun.Algorithms;

/// <summary>
/// Trust-region policy optimization's step (Schulman et al. 2015), as MAML's RL experiments take
/// their outer step: with g the surrogate's gradient and F the Fisher matrix (the Hessian of the
/// mean KL divergence at the current parameters), s ≈ F⁻¹g by conjugate gradient on
/// Fisher-vector products, the largest step along −s with ½ sᵀFs ≤ δ, then a backtracking line
/// search that keeps a step only if the surrogate improves and the KL stays within δ. Vectors are
/// flat float64 arrays; the products come from the caller (through the adaptation, for MAML).
/// </summary>
public static class Trpo
{
    public const int CgIterations = 10;
    /// <summary>Added to the Fisher matrix's diagonal (the official code's reg_coeff), so CG stays defined where F is singular.</summary>
    public const double CgDamping = 1e-5;
    public const double BacktrackRatio = 0.8;
    public const int MaxBacktracks = 15;

    /// <summary>x ≈ A⁻¹b after <paramref name="iterations"/> conjugate-gradient iterations, A given by its products.</summary>
    public static double[] ConjugateGradient(Func<double[], double[]> product, double[] b, int iterations = CgIterations, double tolerance = 1e-10) =>
        Algorithms.ConjugateGradient.Solve(product, b, iterations, tolerance).X;

    /// <summary>The full step: s scaled so that ½ (βs)ᵀF(βs) = δ.</summary>
    public static double[] FullStep(double[] s, double[] fs, double maxKl)
    {
        var shs = Dot(s, fs);
        var beta = shs > 0 ? Math.Sqrt(2 * maxKl / shs) : 0;
        return [.. s.Select(v => v * beta)];
    }

    /// <summary>
    /// Tries fractions 1, r, r², … of the full step (<paramref name="evaluate"/>(fraction) gives the
    /// surrogate loss and the mean KL there) and returns the first whose loss is below
    /// <paramref name="lossBefore"/> with KL ≤ <paramref name="maxKl"/>, or null when none is.
    /// </summary>
    public static (double Fraction, double Loss, double Kl)? LineSearch(Func<double, (double Loss, double Kl)> evaluate, double lossBefore, double maxKl,
        double ratio = BacktrackRatio, int maxSteps = MaxBacktracks)
    {
        var fraction = 1.0;
        for (var i = 0; i < maxSteps; i++, fraction *= ratio)
        {
            var (loss, kl) = evaluate(fraction);
            if (double.IsFinite(loss) && loss < lossBefore && kl <= maxKl) return (fraction, loss, kl);
        }
        return null;
    }

    public static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (var i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }
}
