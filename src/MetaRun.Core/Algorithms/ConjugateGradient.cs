namespace MetaRun.Algorithms;

/// <summary>
/// x ≈ A⁻¹b by conjugate gradient, A symmetric positive definite and given only by its products
/// (TRPO's Fisher-vector products, iMAML's (I + H/λ)-vector products). With several blocks, A is
/// block diagonal over equal-length consecutive slices of the vector (one per task of a batched
/// meta-batch): each block runs its own CG, with its own step sizes and stopping test, on one
/// shared product per iteration, so each block's answer is the one a solve of that block alone
/// would give. By hand: the binding has no conjugate-gradient solver, and the products are not a matrix.
/// </summary>
public static class ConjugateGradient
{
    /// <summary>
    /// At most <paramref name="iterations"/> iterations; a block stops once its squared residual
    /// norm is at most <paramref name="tolerance"/> (or the product shows A not positive along its
    /// direction). Returns x and each block's relative residual ‖b − Ax‖ / ‖b‖ (0 where b is 0),
    /// as CG's recurrence tracks it.
    /// </summary>
    public static (double[] X, double[] Residuals) Solve(Func<double[], double[]> product, double[] b, int iterations, double tolerance, int blocks = 1)
    {
        if (blocks < 1 || b.Length % blocks != 0) throw new ArgumentException($"{b.Length} values do not split into {blocks} equal blocks", nameof(blocks));
        var n = b.Length / blocks;
        var x = new double[b.Length];
        var r = (double[])b.Clone();
        var p = (double[])b.Clone();
        var rr = new double[blocks];
        var bb = new double[blocks];
        var active = new bool[blocks];
        for (var k = 0; k < blocks; k++)
        {
            rr[k] = bb[k] = Dot(r, r, k * n, n);
            active[k] = rr[k] > tolerance;
        }
        for (var i = 0; i < iterations && active.Any(a => a); i++)
        {
            var ap = product(p);
            for (var k = 0; k < blocks; k++)
            {
                if (!active[k]) continue;
                var (start, end) = (k * n, (k + 1) * n);
                var pap = Dot(p, ap, start, n);
                if (!(pap > 0))
                {
                    active[k] = false;
                    continue;
                }
                var alpha = rr[k] / pap;
                for (var j = start; j < end; j++)
                {
                    x[j] += alpha * p[j];
                    r[j] -= alpha * ap[j];
                }
                var next = Dot(r, r, start, n);
                var beta = next / rr[k];
                for (var j = start; j < end; j++) p[j] = r[j] + beta * p[j];
                rr[k] = next;
                active[k] = next > tolerance;
            }
        }
        return (x, [.. rr.Select((v, k) => bb[k] > 0 ? Math.Sqrt(v / bb[k]) : 0)]);
    }

    private static double Dot(double[] a, double[] b, int start, int count)
    {
        double s = 0;
        for (var i = start; i < start + count; i++) s += a[i] * b[i];
        return s;
    }
}
