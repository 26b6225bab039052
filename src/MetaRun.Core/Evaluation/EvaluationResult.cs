using System.Text.Json.Nodes;
using MetaRun.Algorithms;
using MetaRun.Data;

namespace MetaRun.Evaluation;

/// <summary>The meta-test result of a checkpoint: the headline metric over episodes with its 95% interval, and what produced it.</summary>
/// <param name="Attacked">Under <paramref name="Attack"/>: the headline metric on the perturbed query sets, episode for episode beside <paramref name="Summary"/>.</param>
public sealed record EvaluationResult(
    HeadlineMetric Metric, Summary Summary, string Split, EpisodeShape Shape, bool Regression,
    int InnerSteps, double InnerLr, long Iteration, string Checkpoint, double Seconds, Attack? Attack = null, Summary? Attacked = null, long Seed = 0)
{
    /// <summary>
    /// Whether every episode scored a finite number. A NaN or infinite score means the adapted
    /// model diverged (an inner step too large for the test steps, or a diverged checkpoint).
    /// </summary>
    /// <summary>Whether this process reports the result: every rank of a data-parallel evaluation holds the same one, and rank 0 alone prints and writes it.</summary>
    public bool Reporter { get; init; } = true;

    /// <summary>The test episodes' shape in words (<see cref="Settings.EpisodeText"/>).</summary>
    public string Episodes { get; init; } = "";

    /// <summary>For a learner with a predictive distribution (CNP on regression): its Gaussian NLL and 90%-interval coverage over the same episodes.</summary>
    public PredictiveSummary? Predictive { get; init; }

    /// <summary>A classification evaluation's calibration (NLL, ECE, Brier, the reliability histogram); null for regression and under attack.</summary>
    public CalibrationSummary? Calibration { get; init; }

    /// <summary>The out-of-distribution check of `eval --ood`, when asked for.</summary>
    public OodSummary? Ood { get; init; }

    /// <summary>A regression evaluation's predictive intervals, for a learner that predicts a variance.</summary>
    public IntervalSummary? Intervals { get; init; }

    /// <summary>
    /// A record of its own beside the plain evaluation of the same episodes (<see cref="EvaluationStore.OodVariant"/>,
    /// <see cref="AdaptationCurve.Variant"/>), so neither replaces the other in the store; null for a plain evaluation.
    /// </summary>
    public string? Variant { get; init; }

    public bool Finite => double.IsFinite(Summary.Mean) && double.IsFinite(Summary.Ci95);

    /// <summary>Why the scores are not numbers, when they are not.</summary>
    public string? NonFiniteReason => Finite ? null
        : $"diverged: the {Metric.Name} is {Summary.Mean} over these episodes (a NaN or infinite score from the adapted model; lower algorithm.inner_lr or algorithm.test_inner_steps, or the checkpoint itself diverged)";

    // JSON has no NaN or infinity: such scores are null, with the reason beside them.
    public JsonObject ToJson()
    {
        var json = Fields();
        if (Finite) json.Remove("non_finite");
        if (Attack != null && Attacked is { } a)
            json["attack"] = new JsonObject
            {
                ["kind"] = Attack.Name,
                ["epsilon"] = Attack.Epsilon,
                ["steps"] = Attack.Steps,
                ["step_size"] = Math.Round(Attack.StepSize, 6),
                ["on"] = "query",
                ["mean"] = double.IsFinite(a.Mean) ? Math.Round(a.Mean, 6) : null,
                ["ci95"] = double.IsFinite(a.Ci95) ? Math.Round(a.Ci95, 6) : null,
            };
        if (Predictive is { } p)
        {
            json["gaussian_nll"] = new JsonObject { ["mean"] = Math.Round(p.Nll.Mean, 6), ["ci95"] = Math.Round(p.Nll.Ci95, 6) };
            json["coverage90"] = new JsonObject { ["mean"] = Math.Round(p.Coverage90.Mean, 6), ["ci95"] = Math.Round(p.Coverage90.Ci95, 6) };
        }
        if (Calibration != null) json["calibration"] = Calibration.ToJson();
        if (Ood != null) json["ood"] = Ood.ToJson();
        if (Intervals != null) json["intervals"] = Intervals.ToJson();
        if (Variant != null) json["variant"] = Variant;
        return json;
    }

    private JsonObject Fields() => new()
    {
        ["metric"] = Metric.Name,
        ["mean"] = Finite ? Math.Round(Summary.Mean, 6) : null,
        ["ci95"] = Finite ? Math.Round(Summary.Ci95, 6) : null,
        ["non_finite"] = NonFiniteReason,
        ["episodes"] = Summary.Count,
        ["split"] = Split,
        ["ways"] = Shape.Ways,
        ["shots"] = Shape.Shots,
        ["queries"] = Shape.Queries,
        ["inner_steps"] = InnerSteps,
        ["inner_lr"] = InnerLr,
        ["iteration"] = Iteration,
        ["checkpoint"] = Checkpoint,
        ["seed"] = Seed,
        ["seconds"] = Math.Round(Seconds, 2),
    };
}

/// <summary>Per-episode Gaussian negative log-likelihood of the query targets, and the share of them inside the 90% predictive interval, summarised over episodes.</summary>
public readonly record struct PredictiveSummary(Summary Nll, Summary Coverage90);
