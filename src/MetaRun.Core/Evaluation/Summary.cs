namespace MetaRun.Evaluation;

/// <summary>Mean and 95% confidence half-width (1.96 standard errors) of per-episode values.</summary>
public readonly record struct Summary(double Mean, double Ci95, int Count)
{
    public static Summary Of(IReadOnlyCollection<double> values)
    {
        var n = values.Count;
        if (n == 0) return new Summary(double.NaN, double.NaN, 0);
        var mean = values.Average();
        var variance = n > 1 ? values.Sum(v => (v - mean) * (v - mean)) / (n - 1) : 0;
        return new Summary(mean, 1.96 * Math.Sqrt(variance / n), n);
    }
}
