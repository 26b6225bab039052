using System.Text.Json.Nodes;

namespace MetaRun.Evaluation;

/// <summary>
/// A reliability histogram: the query predictions of one or more episodes sorted by their
/// confidence (the top class's probability) into <see cref="Calibration.Bins"/> equal-width bins
/// ((m−1)/M, m/M], each holding how many predictions fell in it, their summed confidence and how
/// many were right. Sums, so episodes' histograms add into the pooled one.
/// </summary>
public sealed class ReliabilityBins
{
    public ReliabilityBins(long[]? counts = null, double[]? confidence = null, double[]? correct = null)
    {
        Counts = counts ?? new long[Calibration.Bins];
        ConfidenceSums = confidence ?? new double[Calibration.Bins];
        CorrectSums = correct ?? new double[Calibration.Bins];
    }

    public long[] Counts { get; }
    public double[] ConfidenceSums { get; }
    public double[] CorrectSums { get; }
    public long Total => Counts.Sum();

    /// <summary>The bin of a confidence in [0, 1]: ((m−1)/M, m/M] is bin m−1; a confidence of 0 joins the first.</summary>
    public static int BinOf(double confidence) => Math.Clamp((int)Math.Ceiling(confidence * Calibration.Bins) - 1, 0, Calibration.Bins - 1);

    public void Add(double confidence, bool correct)
    {
        var b = BinOf(confidence);
        Counts[b]++;
        ConfidenceSums[b] += confidence;
        if (correct) CorrectSums[b]++;
    }

    public void Add(ReliabilityBins other)
    {
        for (var b = 0; b < Calibration.Bins; b++)
        {
            Counts[b] += other.Counts[b];
            ConfidenceSums[b] += other.ConfidenceSums[b];
            CorrectSums[b] += other.CorrectSums[b];
        }
    }

    /// <summary>Expected calibration error: Σ_b (n_b / n) |accuracy_b − confidence_b|; empty bins weigh nothing. NaN without predictions.</summary>
    public double Ece
    {
        get
        {
            var n = Total;
            if (n == 0) return double.NaN;
            var sum = 0.0;
            for (var b = 0; b < Calibration.Bins; b++)
                if (Counts[b] > 0) sum += Math.Abs(CorrectSums[b] - ConfidenceSums[b]) / n;
            return sum;
        }
    }

    /// <summary>Bin b's accuracy and mean confidence (NaN when empty).</summary>
    public (double Accuracy, double Confidence) Bin(int b) =>
        Counts[b] == 0 ? (double.NaN, double.NaN) : (CorrectSums[b] / Counts[b], ConfidenceSums[b] / Counts[b]);

    /// <summary>The histogram as numbers, in bin order (what the report draws).</summary>
    public double[] Flatten() => [.. Counts.Select(c => (double)c), .. ConfidenceSums, .. CorrectSums];

    public static ReliabilityBins Unflatten(ReadOnlySpan<double> v)
    {
        const int m = Calibration.Bins;
        var counts = new long[m];
        for (var b = 0; b < m; b++) counts[b] = (long)v[b];
        return new ReliabilityBins(counts, v.Slice(m, m).ToArray(), v.Slice(2 * m, m).ToArray());
    }

    public JsonArray ToJson() => new([.. Enumerable.Range(0, Calibration.Bins).Select(b =>
    {
        var (acc, conf) = Bin(b);
        return (JsonNode)new JsonObject
        {
            ["lower"] = Math.Round((double)b / Calibration.Bins, 6),
            ["upper"] = Math.Round((double)(b + 1) / Calibration.Bins, 6),
            ["count"] = Counts[b],
            ["confidence"] = Counts[b] == 0 ? null : Math.Round(conf, 6),
            ["accuracy"] = Counts[b] == 0 ? null : Math.Round(acc, 6),
        };
    })]);

    public static ReliabilityBins FromJson(JsonArray bins)
    {
        var r = new ReliabilityBins();
        for (var b = 0; b < Math.Min(bins.Count, Calibration.Bins); b++)
        {
            var o = bins[b]!.AsObject();
            var n = o["count"]!.GetValue<long>();
            r.Counts[b] = n;
            if (n == 0) continue;
            r.ConfidenceSums[b] = o["confidence"]!.GetValue<double>() * n;
            r.CorrectSums[b] = Math.Round(o["accuracy"]!.GetValue<double>() * n);
        }
        return r;
    }
}

/// <summary>One episode's query set: mean negative log-likelihood of the true class, Brier score, ECE, and its reliability histogram.</summary>
public sealed record EpisodeCalibration(double Nll, double Brier, double Ece, ReliabilityBins Bins);

/// <summary>
/// The calibration of an evaluation: NLL and Brier as means over episodes with their 95%
/// intervals; ECE both pooled (one histogram over every query of every episode, the usual figure)
/// and as the mean of each episode's own ECE with its interval.
/// </summary>
public sealed record CalibrationSummary(Summary Nll, Summary Brier, double Ece, Summary EpisodeEce, ReliabilityBins Pooled)
{
    public static CalibrationSummary Of(IReadOnlyList<EpisodeCalibration> episodes)
    {
        var pooled = new ReliabilityBins();
        foreach (var e in episodes) pooled.Add(e.Bins);
        return new CalibrationSummary(Summary.Of(episodes.Select(e => e.Nll).ToArray()), Summary.Of(episodes.Select(e => e.Brier).ToArray()),
            pooled.Ece, Summary.Of(episodes.Select(e => e.Ece).ToArray()), pooled);
    }

    private static JsonNode? Num(double v) => double.IsFinite(v) ? Math.Round(v, 6) : null;

    public JsonObject ToJson() => new()
    {
        ["nll"] = Num(Nll.Mean),
        ["nll_ci95"] = Num(Nll.Ci95),
        ["brier"] = Num(Brier.Mean),
        ["brier_ci95"] = Num(Brier.Ci95),
        ["ece"] = Num(Ece),
        ["ece_episode_mean"] = Num(EpisodeEce.Mean),
        ["ece_episode_ci95"] = Num(EpisodeEce.Ci95),
        ["bins"] = Calibration.Bins,
        ["reliability"] = Pooled.ToJson(),
    };
}

/// <summary>
/// Calibration and uncertainty figures from predicted class probabilities. Written out here
/// because they are a few lines each over arrays the evaluation already holds; nothing in the
/// .NET ecosystem MetaRun uses computes ECE or a rank AUROC.
/// </summary>
public static class Calibration
{
    /// <summary>Equal-width confidence bins of the ECE (Guo et al. 2017 use 15).</summary>
    public const int Bins = 15;

    /// <summary>
    /// One episode from its predicted log-probabilities (row-major [queries, classes]) and true
    /// labels: NLL = −mean log p(y); Brier = mean over queries of Σ_c (p_c − [c = y])² (the
    /// multi-class form, between 0 and 2); ECE over this episode's queries alone.
    /// </summary>
    public static EpisodeCalibration OfLogProbabilities(ReadOnlySpan<double> logProbabilities, ReadOnlySpan<long> labels, int classes)
    {
        var n = labels.Length;
        if (logProbabilities.Length != n * classes) throw new ArgumentException($"{logProbabilities.Length} log-probabilities for {n} queries of {classes} classes");
        var bins = new ReliabilityBins();
        double nll = 0, brier = 0;
        for (var i = 0; i < n; i++)
        {
            var row = logProbabilities.Slice(i * classes, classes);
            var y = (int)labels[i];
            var best = 0;
            for (var c = 0; c < classes; c++)
            {
                var p = Math.Exp(row[c]);
                var d = p - (c == y ? 1 : 0);
                brier += d * d;
                if (row[c] > row[best]) best = c;
            }
            nll -= row[y];
            bins.Add(Math.Exp(row[best]), best == y);
        }
        return new EpisodeCalibration(nll / n, brier / n, bins.Ece, bins);
    }

    /// <summary>The same from probabilities (a probability of 0 for the true class makes the NLL infinite).</summary>
    public static EpisodeCalibration OfProbabilities(ReadOnlySpan<double> probabilities, ReadOnlySpan<long> labels, int classes)
    {
        var logs = new double[probabilities.Length];
        for (var i = 0; i < logs.Length; i++) logs[i] = Math.Log(probabilities[i]);
        return OfLogProbabilities(logs, labels, classes);
    }

    /// <summary>Predictive entropy −Σ p ln p in nats (0 ln 0 = 0): 0 when certain, ln(classes) when uniform.</summary>
    public static double Entropy(ReadOnlySpan<double> probabilities)
    {
        var h = 0.0;
        foreach (var p in probabilities) if (p > 0) h -= p * Math.Log(p);
        return h;
    }

    /// <summary>
    /// Area under the ROC curve of a score at telling positives from negatives: the probability
    /// that a random positive scores above a random negative, ties counting one half (the
    /// Mann–Whitney statistic, from mid-ranks). NaN when either side is empty.
    /// </summary>
    public static double Auroc(IReadOnlyList<double> positives, IReadOnlyList<double> negatives)
    {
        if (positives.Count == 0 || negatives.Count == 0) return double.NaN;
        var all = positives.Select(s => (Score: s, Positive: true)).Concat(negatives.Select(s => (Score: s, Positive: false))).OrderBy(t => t.Score).ToArray();
        double positiveRanks = 0;
        for (var i = 0; i < all.Length;)
        {
            var j = i;
            while (j < all.Length && all[j].Score == all[i].Score) j++;
            var midRank = (i + 1 + j) / 2.0; // ranks i+1..j share their mean
            for (var k = i; k < j; k++) if (all[k].Positive) positiveRanks += midRank;
            i = j;
        }
        double np = positives.Count, nn = negatives.Count;
        return (positiveRanks - np * (np + 1) / 2) / (np * nn);
    }
}

/// <summary>
/// The out-of-distribution check over an evaluation's episodes: the AUROC, pooled over every
/// query, of predictive entropy (higher for out-of-episode queries) and of the top probability
/// (lower for them) at telling out-of-episode queries from in-episode ones, 0.5 being chance;
/// and the accuracy on the in-episode queries of those episodes.
/// </summary>
public sealed record OodSummary(double AurocEntropy, double AurocMaxProbability, Summary InAccuracy, int InQueries, int OutQueries)
{
    public static OodSummary Of(IReadOnlyList<OodEpisode> episodes)
    {
        double[] All(Func<OodEpisode, double[]> f) => [.. episodes.SelectMany(f)];
        var (inTop, outTop) = (All(e => e.InTop), All(e => e.OutTop));
        return new OodSummary(
            Calibration.Auroc(All(e => e.OutEntropy), All(e => e.InEntropy)),
            Calibration.Auroc([.. outTop.Select(p => -p)], [.. inTop.Select(p => -p)]),
            Summary.Of(episodes.Select(e => e.InAccuracy).ToArray()), inTop.Length, outTop.Length);
    }

    private static JsonNode? Num(double v) => double.IsFinite(v) ? Math.Round(v, 6) : null;

    public JsonObject ToJson() => new()
    {
        ["auroc_entropy"] = Num(AurocEntropy),
        ["auroc_max_probability"] = Num(AurocMaxProbability),
        ["in_accuracy"] = Num(InAccuracy.Mean),
        ["in_accuracy_ci95"] = Num(InAccuracy.Ci95),
        ["episodes"] = InAccuracy.Count,
        ["in_queries"] = InQueries,
        ["out_queries"] = OutQueries,
        ["how"] = "episode i is the split's 2N-way episode i; adapted to the support set of its first N classes; the queries of the last N are out of the episode",
    };
}

/// <summary>
/// Predictive intervals on regression tasks, for a learner that predicts a Gaussian per query
/// (<see cref="Algorithms.IPredictiveGaussian"/>): the Gaussian negative log-likelihood of the
/// query targets and the share of them inside the central 90% interval μ ± 1.645 σ, each a mean
/// over episodes with its 95% interval.
/// </summary>
public sealed record IntervalSummary(Summary GaussianNll, Summary Coverage90)
{
    /// <summary>z with Φ(z) = 0.95: the central 90% interval of a Gaussian is μ ± z σ.</summary>
    public const double Z90 = 1.6448536269514722;

    /// <summary>One episode: mean over queries of ½ ln(2π σ²) + (y − μ)² / 2σ², and the share with |y − μ| ≤ z σ.</summary>
    public static (double Nll, double Coverage) OfEpisode(ReadOnlySpan<double> mean, ReadOnlySpan<double> variance, ReadOnlySpan<double> target)
    {
        double nll = 0, inside = 0;
        for (var i = 0; i < target.Length; i++)
        {
            var d = target[i] - mean[i];
            nll += 0.5 * Math.Log(2 * Math.PI * variance[i]) + d * d / (2 * variance[i]);
            if (Math.Abs(d) <= Z90 * Math.Sqrt(variance[i])) inside++;
        }
        return (nll / target.Length, inside / target.Length);
    }

    private static JsonNode? Num(double v) => double.IsFinite(v) ? Math.Round(v, 6) : null;

    public JsonObject ToJson() => new()
    {
        ["gaussian_nll"] = Num(GaussianNll.Mean),
        ["gaussian_nll_ci95"] = Num(GaussianNll.Ci95),
        ["coverage90"] = Num(Coverage90.Mean),
        ["coverage90_ci95"] = Num(Coverage90.Ci95),
    };
}
