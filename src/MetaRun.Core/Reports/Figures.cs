using System.Text.Json.Nodes;
using ScottPlot;

namespace MetaRun.Reports;

/// <summary>
/// The adaptation figures of Finn et al. (2017) the report draws when the runs have their data:
/// Figure 3's score against the number of test-time inner steps, from evaluations of one
/// checkpoint at several step counts in the evaluation store (`metarun eval RUN --inner-steps 0..10`),
/// and Figure 2's regression fits before and after adaptation, from a run's figures/fits.json
/// (written by the same command); and a learned optimizer's loss curves against its baselines
/// (Andrychowicz et al. 2016, Figure 2), from figures/optimizer-curves.json (written by its `eval`).
/// Each becomes a figure of panels of series for Report.js.
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
        figures.AddRange(RunFigures(runs));
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

    /// <summary>
    /// The per-run figures `eval` writes: Finn et al.'s Figure 2 (figures/fits.json, a panel per test
    /// task: ground truth, support points, prediction before and after adaptation) and a learned
    /// optimizer's loss curves against its baselines (figures/optimizer-curves.json).
    /// </summary>
    public static IEnumerable<JsonObject> RunFigures(IReadOnlyList<RunFolder> runs)
    {
        foreach (var r in runs)
        foreach (var name in (string[])[FitsFile, Evaluation.OptimizerCurves.JsonFile])
        {
            var path = Path.Combine(r.Dir, Folder, name);
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

    /// <summary>
    /// The adaptation figures as PNG images in <paramref name="dir"/>, drawn with ScottPlot from
    /// the same panels the report draws: steps.png (score against inner steps, every run on one
    /// panel) and fits.png (a row of test tasks per run, in the order given), and optimizer-curves-RUN.png for each learned optimizer's loss curves. Returns the files written.
    /// </summary>
    public static IReadOnlyList<string> WritePngs(IReadOnlyList<JsonObject> figures, string dir)
    {
        Directory.CreateDirectory(dir);
        var written = new List<string>();
        var steps = figures.Where(f => f["id"]?.GetValue<string>() == "steps").ToList();
        var fits = figures.Where(f => f["id"]?.GetValue<string>() is { } id && id.StartsWith("fits-", StringComparison.Ordinal)).ToList();
        if (steps.Count > 0)
            written.Add(Plots.SaveGrid([.. steps[0]["panels"]!.AsArray().Select(p => Panel(steps[0], p!, steps[0]["title"]!.GetValue<string>()))], 1, 900, 560, Path.Combine(dir, "steps.png")));
        if (fits.Count > 0)
        {
            var columns = fits.Max(f => f["panels"]!.AsArray().Count);
            var panels = new List<Plot>();
            foreach (var f in fits)
            {
                var name = f["id"]!.GetValue<string>()["fits-".Length..];
                var row = f["panels"]!.AsArray().Select(p => Panel(f, p!, $"{name}: {p!["title"]!.GetValue<string>()}")).ToList();
                while (row.Count < columns) row.Add(new Plot());
                panels.AddRange(row);
            }
            written.Add(Plots.SaveGrid(panels, columns, 480, 440, Path.Combine(dir, "fits.png")));
        }
        foreach (var f in figures.Where(f => f["id"]?.GetValue<string>() is { } id && id.StartsWith("optimizer-curves-", StringComparison.Ordinal)))
            written.Add(WritePng(f, Path.Combine(dir, f["id"]!.GetValue<string>() + ".png")));
        return written;
    }

    /// <summary>A one-panel figure (as the report draws it) as a PNG at <paramref name="path"/>.</summary>
    public static string WritePng(JsonObject figure, string path) =>
        Plots.SaveGrid([Panel(figure, figure["panels"]![0]!, figure["panels"]![0]!["title"]!.GetValue<string>())], 1, 900, 560, path);

    private static Plot Panel(JsonObject figure, JsonNode panel, string title)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel(figure["xLabel"]?.GetValue<string>() ?? "");
        plot.YLabel(figure["yLabel"]?.GetValue<string>() ?? "");
        // A loss falling over orders of magnitude (the optimizer curves) reads on a log axis: ScottPlot
        // has none, so the values are drawn as log10 and the ticks labelled with 10^tick.
        var log = figure["yLog"]?.GetValue<bool>() == true;
        double[] Values(JsonNode? a) => [.. a!.AsArray().Select(v => v?.GetValue<double>() ?? double.NaN)];
        double[] YValues(JsonNode? a) => log ? [.. Values(a).Select(v => v > 0 ? Math.Log10(v) : double.NaN)] : Values(a);
        if (log)
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
                LabelFormatter = y => Math.Pow(10, y).ToString("G3", System.Globalization.CultureInfo.InvariantCulture),
            };
        foreach (var s in panel["series"]!.AsArray())
        {
            var (x, y) = (Values(s!["x"]), YValues(s["y"]));
            var colour = Color.FromHex(s["colour"]!.GetValue<string>());
            if (s["lo"] != null && s["hi"] != null)
            {
                // On the log axis a band reaching 0 or below is cut at a tenth of the curve.
                double[] lo = log ? [.. Values(s["lo"]).Zip(Values(s["y"]), (l, m) => Math.Log10(l > 0 ? l : m / 10))] : Values(s["lo"]);
                var band = plot.Add.FillY(x, lo, YValues(s["hi"]));
                band.FillColor = colour.WithAlpha(0.2);
                band.LineColor = Colors.Transparent;
            }
            var points = s["points"]?.GetValue<bool>() == true;
            var line = points ? plot.Add.ScatterPoints(x, y) : plot.Add.Scatter(x, y);
            line.Color = colour;
            line.LegendText = s["label"]!.GetValue<string>();
            if (points) line.MarkerSize = 8;
            else
            {
                line.LineWidth = 2;
                // Markers where a curve has few points (the steps), none on a traced function.
                line.MarkerSize = x.Length <= 20 ? 5 : 0;
                if (s["dash"] is JsonArray) line.LinePattern = LinePattern.Dashed;
            }
        }
        plot.ShowLegend(Edge.Bottom);
        return plot;
    }

    private static JsonArray Nums(IEnumerable<double> xs) => new([.. xs.Select(x => (JsonNode)JsonValue.Create(Math.Round(x, 7)))]);
}
