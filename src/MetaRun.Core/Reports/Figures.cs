using System.Text.Json.Nodes;

namespace MetaRun.Reports;

/// <summary>
/// The adaptation figures of Finn et al. (2017) the report draws when the runs have their data:
/// Figure 3's score against the number of test-time inner steps, from evaluations of one
/// checkpoint at several step counts in the evaluation store (`metarun eval RUN --inner-steps 0..10`),
/// and Figure 2's regression fits before and after adaptation, from a run's figures/fits.json
/// (written by the same command). Each becomes a figure of panels of series for Report.js.
/// </summary>
public static class Figures
{
    public const string FitsFile = "fits.json";
    public const string Folder = "figures";

    private static readonly string[] Colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

    public static IReadOnlyList<JsonObject> Of(IReadOnlyList<RunFolder> runs)
    {
        var figures = new List<JsonObject>();
        if (StepsFigure(runs) is { } steps) figures.Add(steps);
        figures.AddRange(FitFigures(runs));
        return figures;
    }

    /// <summary>
    /// Score against inner steps, one series per run with its 95% band: clean test evaluations of
    /// one checkpoint at one episode shape and count that differ only in their step count (at
    /// least three counts).
    /// </summary>
    public static JsonObject? StepsFigure(IReadOnlyList<RunFolder> runs)
    {
        var series = new JsonArray();
        string? metric = null;
        foreach (var r in runs)
        {
            var curve = r.Evaluations.Where(e => e.Variant == Evaluation.AdaptationCurve.Variant && e.Attack == null && e.Split == "test" && e.Mean != null)
                .GroupBy(e => (e.CheckpointName, e.Iteration, e.Ways, e.Shots, e.Queries, e.Episodes, e.InnerLr, e.Seed))
                .Select(g => g.GroupBy(e => e.InnerSteps).Select(s => s.OrderBy(e => e.Recorded).Last()).OrderBy(e => e.InnerSteps).ToList())
                .Where(c => c.Count >= 3).OrderBy(c => c.Count).LastOrDefault();
            if (curve == null) continue;
            metric ??= curve[0].Metric;
            var colour = Colours[series.Count % Colours.Length];
            series.Add(new JsonObject
            {
                ["label"] = $"{r.Config.Algorithm.Name}: {r.Name}",
                ["colour"] = colour,
                ["x"] = Nums(curve.Select(e => (double)e.InnerSteps)),
                ["y"] = Nums(curve.Select(e => e.Mean!.Value)),
                ["lo"] = Nums(curve.Select(e => e.Mean!.Value - (e.Ci95 ?? 0))),
                ["hi"] = Nums(curve.Select(e => e.Mean!.Value + (e.Ci95 ?? 0))),
            });
        }
        if (series.Count == 0) return null;
        return new JsonObject
        {
            ["id"] = "steps",
            ["title"] = $"Test {metric} against the number of inner gradient steps at test time",
            ["caption"] = "Each run's checkpoint adapted with 0, 1, … steps of its inner rate on the same test episodes (metarun eval RUN --inner-steps 0..10); band: 95% CI over episodes. Finn et al. (2017), Figure 3.",
            ["xLabel"] = "inner steps",
            ["yLabel"] = metric,
            ["panels"] = new JsonArray { new JsonObject { ["title"] = $"{metric} after k steps", ["series"] = series } },
        };
    }

    /// <summary>Figure 2: for each run with figures/fits.json, a panel per test task (ground truth, support points, prediction before and after adaptation).</summary>
    public static IEnumerable<JsonObject> FitFigures(IReadOnlyList<RunFolder> runs)
    {
        foreach (var r in runs)
        {
            var path = Path.Combine(r.Dir, Folder, FitsFile);
            if (!File.Exists(path)) continue;
            JsonObject? fits;
            try { fits = JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
            catch (System.Text.Json.JsonException e)
            {
                r.Warnings.Add($"{path}: unreadable ({e.Message}); its figure is left out");
                continue;
            }
            if (fits != null) yield return fits;
        }
    }

    private static JsonArray Nums(IEnumerable<double> xs) => new([.. xs.Select(x => (JsonNode)JsonValue.Create(Math.Round(x, 7)))]);
}
