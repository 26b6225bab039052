using MetaRun.Evaluation;

namespace MetaRun.Tests.Evaluation;

/// <summary>NLL, ECE, Brier, entropy and AUROC against values worked out by hand on small probability tables.</summary>
public class CalibrationTests
{
    private const double Tol = 1e-12;

    [Fact]
    public void Perfect_predictions_have_zero_nll_zero_brier_and_zero_ece()
    {
        double[] p = [1, 0, 0, /**/ 0, 1, 0, /**/ 0, 0, 1];
        var c = Calibration.OfProbabilities(p, [0, 1, 2], 3);
        Assert.Equal(0, c.Nll, Tol);
        Assert.Equal(0, c.Brier, Tol);
        Assert.Equal(0, c.Ece, Tol);
        // All three at confidence 1: the last bin, (14/15, 1]; the other fourteen are empty and weigh nothing.
        Assert.Equal(3, c.Bins.Counts[14]);
        Assert.Equal(3, c.Bins.Total);
    }

    [Fact]
    public void Maximally_wrong_predictions_have_infinite_nll_brier_two_and_ece_one()
    {
        double[] p = [0, 1, /**/ 1, 0];
        var c = Calibration.OfProbabilities(p, [0, 1], 2);
        Assert.Equal(double.PositiveInfinity, c.Nll);
        // Each row: (0 − 1)² + (1 − 0)² = 2.
        Assert.Equal(2, c.Brier, Tol);
        // Confidence 1, accuracy 0, all in one bin.
        Assert.Equal(1, c.Ece, Tol);
    }

    [Fact]
    public void Nll_brier_and_ece_match_a_hand_computation_with_empty_bins()
    {
        // Four queries, two classes; label, top probability, bin ((m−1)/15, m/15]:
        //   q0 [0.9, 0.1] y=0  conf 0.9  right  bin 13 (0.8667, 0.9333]
        //   q1 [0.6, 0.4] y=1  conf 0.6  wrong  bin 8  (0.5333, 0.6]
        //   q2 [0.3, 0.7] y=1  conf 0.7  right  bin 10 (0.6667, 0.7333]
        //   q3 [0.95,0.05] y=0 conf 0.95 right  bin 14 (0.9333, 1]
        double[] p = [0.9, 0.1, 0.6, 0.4, 0.3, 0.7, 0.95, 0.05];
        var c = Calibration.OfProbabilities(p, [0, 1, 1, 0], 2);
        var nll = -(Math.Log(0.9) + Math.Log(0.4) + Math.Log(0.7) + Math.Log(0.95)) / 4;
        Assert.Equal(nll, c.Nll, Tol);
        // Brier per row: 2·0.1², 2·0.6², 2·0.3², 2·0.05².
        Assert.Equal((0.02 + 0.72 + 0.18 + 0.005) / 4, c.Brier, Tol);
        // One query per occupied bin: ECE = (|1−0.9| + |0−0.6| + |1−0.7| + |1−0.95|) / 4 = 1.05 / 4.
        Assert.Equal(1.05 / 4, c.Ece, Tol);
        Assert.Equal([0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 1], c.Bins.Counts);
    }

    [Fact]
    public void Pooled_ece_bins_every_episode_together_and_differs_from_the_mean_of_episode_eces()
    {
        // Episode A: two queries at confidence 0.8 (bin 11), one right: ECE |0.5 − 0.8| = 0.3.
        // Episode B: two queries at confidence 0.8, both right: ECE |1 − 0.8| = 0.2.
        var a = Calibration.OfProbabilities([0.8, 0.2, 0.8, 0.2], [0, 1], 2);
        var b = Calibration.OfProbabilities([0.2, 0.8, 0.8, 0.2], [1, 0], 2);
        Assert.Equal(0.3, a.Ece, Tol);
        Assert.Equal(0.2, b.Ece, Tol);
        var s = CalibrationSummary.Of([a, b]);
        // Pooled: four queries in bin 11, three right: |0.75 − 0.8| = 0.05.
        Assert.Equal(0.05, s.Ece, Tol);
        Assert.Equal(0.25, s.EpisodeEce.Mean, Tol);
        Assert.Equal(2, s.EpisodeEce.Count);
    }

    [Fact]
    public void A_confidence_on_a_bin_edge_falls_in_the_lower_bin()
    {
        Assert.Equal(0, ReliabilityBins.BinOf(1.0 / 15));
        Assert.Equal(1, ReliabilityBins.BinOf(1.0 / 15 + 1e-9));
        Assert.Equal(14, ReliabilityBins.BinOf(1.0));
        Assert.Equal(0, ReliabilityBins.BinOf(0.0));
        Assert.Equal(7, ReliabilityBins.BinOf(0.5));
    }

    [Fact]
    public void An_evaluation_without_predictions_has_no_ece()
    {
        Assert.True(double.IsNaN(new ReliabilityBins().Ece));
    }

    [Fact]
    public void Entropy_is_zero_when_certain_and_log_classes_when_uniform()
    {
        Assert.Equal(0, Calibration.Entropy([1, 0, 0]), Tol);
        Assert.Equal(Math.Log(4), Calibration.Entropy([0.25, 0.25, 0.25, 0.25]), Tol);
        Assert.Equal(-(0.5 * Math.Log(0.5) + 0.25 * Math.Log(0.25) * 2), Calibration.Entropy([0.5, 0.25, 0.25]), Tol);
    }

    [Fact]
    public void Auroc_matches_a_hand_sorted_example_with_a_tie()
    {
        // Positives (out of episode) 0.9, 0.7, 0.4; negatives 0.8, 0.4, 0.2, 0.1.
        // Sorted descending: 0.9+ 0.8− 0.7+ 0.4+ 0.4− 0.2− 0.1−.
        // Pairs (positive above negative) out of 3·4 = 12:
        //   0.9 beats all 4; 0.7 beats 0.4, 0.2, 0.1 = 3; 0.4 beats 0.2, 0.1 = 2 and ties 0.4 = ½.
        // AUROC = (4 + 3 + 2.5) / 12.
        Assert.Equal(9.5 / 12, Calibration.Auroc([0.9, 0.7, 0.4], [0.8, 0.4, 0.2, 0.1]), Tol);
    }

    [Fact]
    public void Auroc_is_one_when_separated_zero_when_reversed_and_half_when_all_tie()
    {
        Assert.Equal(1, Calibration.Auroc([3, 4], [1, 2]), Tol);
        Assert.Equal(0, Calibration.Auroc([1, 2], [3, 4]), Tol);
        Assert.Equal(0.5, Calibration.Auroc([1, 1], [1, 1, 1]), Tol);
        Assert.True(double.IsNaN(Calibration.Auroc([], [1])));
    }

    [Fact]
    public void Ood_auroc_by_top_probability_counts_a_lower_top_probability_as_out_of_episode()
    {
        var e = new OodEpisode(1, InEntropy: [0.1, 0.2], InTop: [0.95, 0.9], OutEntropy: [0.15, 0.6], OutTop: [0.92, 0.5]);
        var s = OodSummary.Of([e]);
        // Entropy: out 0.15 beats in 0.1 only; out 0.6 beats both → 3 / 4.
        Assert.Equal(0.75, s.AurocEntropy, Tol);
        // Top probability, lower is more out: 0.92 is below 0.95 only; 0.5 below both → 3 / 4.
        Assert.Equal(0.75, s.AurocMaxProbability, Tol);
    }

    [Fact]
    public void Interval_coverage_and_gaussian_nll_match_a_hand_computation()
    {
        // μ = 0, σ² = 1; targets 0 (inside), 1.6 (inside), −2 (outside 1.645).
        var (nll, coverage) = IntervalSummary.OfEpisode([0, 0, 0], [1, 1, 1], [0, 1.6, -2]);
        Assert.Equal(2.0 / 3, coverage, Tol);
        Assert.Equal(0.5 * Math.Log(2 * Math.PI) + (0 + 1.6 * 1.6 + 4) / 2 / 3, nll, Tol);
    }
}
