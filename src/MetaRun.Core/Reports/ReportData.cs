using System.Globalization;
using System.Text.Json.Nodes;
using MetaRun.Config;
using MetaRun.Training;

namespace MetaRun.Reports;

/// <summary>
/// What the interactive report draws, as one JSON document embedded in the page: each run's
/// curves and evaluations, and per headline metric (accuracy, MSE) the settings — runs that
/// differ only by seed — with their results across seeds. The page's script (Report.js) does
/// all drawing, smoothing and grouping of curves from this.
/// </summary>
/// <remarks>
/// A result section is a list of named columns with a value per seed, so a new evaluation metric
/// (a variant label, a calibration score) becomes a column and a labelled section by adding it
/// to <see cref="Section"/>'s columns; the page needs no change.
/// </remarks>
public static class ReportData
{
    /// <summary>Train curves longer than this are averaged over equal bins (validation rows are all kept), so a report of 50 long runs stays a few megabytes.</summary>
    public const int MaxTrainPoints = 2000;

    // Two-sided 95% Student t quantiles for 1..30 degrees of freedom; beyond, the normal's.
    private static readonly double[] T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042];

    public static double TQuantile(int df) => df < 1 ? double.NaN : df <= T975.Length ? T975[df - 1] : 1.96;

    public static JsonObject Build(IReadOnlyList<RunFolder> runs, IReadOnlyList<Comparison> comparisons, IReadOnlyList<JsonObject>? figures = null)
    {
        var index = runs.Select((r, i) => (r, i)).ToDictionary(x => x.r, x => x.i);
        var runNodes = new JsonArray();
        foreach (var r in runs) runNodes.Add(Run(r));
        var sections = new JsonArray();
        foreach (var c in comparisons) sections.Add(Section(c, index));
        return new JsonObject
        {
            ["generated"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " UTC",
            ["t975"] = new JsonArray([.. T975.Select(t => (JsonNode)JsonValue.Create(t))]),
            ["runs"] = runNodes,
            ["sections"] = sections,
            ["figures"] = new JsonArray([.. (figures ?? []).Select(f => (JsonNode)f)]),
        };
    }

    private static JsonObject Run(RunFolder r)
    {
        var m = r.Metrics;
        var train = Binned(m.Where(x => double.IsFinite(x.TrainLoss)).ToList());
        var val = m.Where(x => x.ValLoss != null || x.ValAccuracy != null).ToList();
        var seconds = Plots.SecondsPerIteration(r).ToList();
        var o = new JsonObject
        {
            ["name"] = r.Name,
            ["dir"] = r.Dir,
            ["seed"] = r.Config.Seed,
            ["regression"] = r.IsRegression,
            ["algorithm"] = r.Config.Algorithm.Name,
            ["config"] = r.ConfigYaml,
            ["warnings"] = new JsonArray([.. r.Warnings.Select(w => (JsonNode)JsonValue.Create(w))]),
            ["train"] = new JsonObject
            {
                ["x"] = Nums(train.Select(t => (double)t.Iteration)),
                ["loss"] = Nums(train.Select(t => t.TrainLoss)),
                ["accuracy"] = r.IsRegression ? null : Nums(train.Select(t => t.TrainAccuracy)),
            },
            ["val"] = new JsonObject
            {
                ["x"] = Nums(val.Select(v => (double)v.Iteration)),
                ["loss"] = Nums(val.Select(v => v.ValLoss)),
                ["accuracy"] = r.IsRegression ? null : Nums(val.Select(v => v.ValAccuracy)),
                ["ci95"] = Nums(val.Select(v => v.ValCi95)),
            },
            ["seconds"] = new JsonObject { ["x"] = Nums(seconds.Select(s => (double)s.Iteration)), ["y"] = Nums(seconds.Select(s => s.Seconds)) },
            ["evaluations"] = new JsonArray([.. r.Evaluations.Select(e => (JsonNode)new JsonObject
            {
                ["split"] = e.Split, ["checkpoint"] = e.CheckpointName, ["iteration"] = e.Iteration, ["episodes"] = e.Episodes,
                ["shape"] = r.IsRegression ? $"K={e.Shots}" : $"{e.Ways}w{e.Shots}s", ["steps"] = e.InnerSteps, ["attack"] = e.Attack,
                ["metric"] = e.Metric, ["value"] = Num(e.Value), ["ci95"] = Num(e.ValueCi95),
            })]),
        };
        if (r.Headline is { Reliability: { } bins } h)
            o["reliability"] = new JsonObject
            {
                ["ece"] = Num(h.Ece),
                ["total"] = bins.Total,
                ["episodes"] = h.Episodes,
                ["checkpoint"] = h.CheckpointName,
                ["bins"] = new JsonArray([.. Enumerable.Range(0, Evaluation.Calibration.Bins).Select(b => (JsonNode)new JsonObject
                {
                    ["count"] = bins.Counts[b],
                    ["confidence"] = bins.Counts[b] > 0 ? Num(bins.Bin(b).Confidence) : null,
                    ["accuracy"] = bins.Counts[b] > 0 ? Num(bins.Bin(b).Accuracy) : null,
                })]),
            };
        // A constant rate is one number, said in the config; only a schedule gets a curve.
        if (r.Config.Algorithm.OuterLrSchedule != LrSchedule.Constant && m.Count > 0)
            o["lr"] = new JsonObject { ["x"] = Nums(train.Select(t => (double)t.Iteration)), ["y"] = Nums(train.Select(t => MetaIteration.ScheduledLr(r.Config.Algorithm, t.Iteration))) };
        return o;
    }

    private static JsonObject Section(Comparison c, IReadOnlyDictionary<RunFolder, int> index)
    {
        var higher = c.Headline.HigherIsBetter;
        // Columns: the headline test score, the best validation score, then each other evaluation; a value per seed.
        var columns = new JsonArray
        {
            Column("test", $"test {c.Metric}", higher, c.Rows, r => r.Eval?.Mean, r => r.Eval?.Ci95, headline: true),
            Column("val", $"best val {(higher ? "accuracy" : "loss")}", higher, c.Rows, r => r.BestValidation, _ => null),
        };
        foreach (var v in c.Variants)
            columns.Add(Column(v, $"{c.Metric} ({v})", higher, c.Rows, r => r.Variants.GetValueOrDefault(v)?.Value, r => r.Variants.GetValueOrDefault(v)?.ValueCi95));
        // Calibration and OOD figures of the headline evaluation: a value per seed, their spread across seeds as the interval.
        foreach (var u in c.Uncertainties)
        {
            var column = Column(u.Name, u.Name, u.HigherIsBetter ?? false, c.Rows, u.Of, _ => null);
            column["kind"] = "calibration";
            if (u.HigherIsBetter == null) column["higherIsBetter"] = null;
            columns.Add(column);
        }

        var groups = new JsonArray();
        foreach (var (row, i) in c.Rows.Select((row, i) => (row, i)))
            groups.Add(new JsonObject
            {
                ["label"] = row.Label(c.Keys),
                ["values"] = new JsonArray([.. row.KeyValues.Select(v => (JsonNode)JsonValue.Create(v))]),
                ["runs"] = new JsonArray([.. row.Runs.Select(r => (JsonNode)JsonValue.Create(index[r]))]),
                ["seeds"] = new JsonArray([.. row.Runs.Select(r => (JsonNode)JsonValue.Create(r.Config.Seed))]),
            });

        // Keys that differ between settings (the swept ones) and those every run shares.
        var runs = c.Rows.SelectMany(r => r.Runs).ToList();
        var all = runs.SelectMany(r => r.Keys.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var common = new JsonObject();
        foreach (var k in all.Where(k => !c.Keys.Contains(k) && runs.Select(r => r.Keys.GetValueOrDefault(k, "")).Distinct().Count() == 1))
            common[k] = runs[0].Keys.GetValueOrDefault(k, "");
        return new JsonObject
        {
            ["metric"] = c.Metric,
            ["higherIsBetter"] = higher,
            ["keys"] = new JsonArray([.. c.Keys.Select(k => (JsonNode)JsonValue.Create(k))]),
            ["groups"] = groups,
            ["columns"] = columns,
            ["common"] = common,
            ["note"] = c.TestColumnNote,
        };
    }

    private static JsonObject Column(string id, string title, bool higherIsBetter, IReadOnlyList<ComparisonRow> rows, Func<RunFolder, double?> value, Func<RunFolder, double?> ci, bool headline = false) => new()
    {
        ["id"] = id,
        ["title"] = title,
        ["higherIsBetter"] = higherIsBetter,
        ["headline"] = headline,
        // Per setting, per seed (in the group's run order): the value and its own 95% interval over episodes.
        ["values"] = new JsonArray([.. rows.Select(r => (JsonNode)Nums(r.Runs.Select(value)))]),
        ["ci95"] = new JsonArray([.. rows.Select(r => (JsonNode)Nums(r.Runs.Select(ci)))]),
    };

    // Equal bins of consecutive rows averaged (iteration at the bin's last row), so the curve keeps its shape.
    private static List<MetricsRow> Binned(List<MetricsRow> rows)
    {
        if (rows.Count <= MaxTrainPoints) return rows;
        var size = (rows.Count + MaxTrainPoints - 1) / MaxTrainPoints;
        return [.. rows.Chunk(size).Select(b => new MetricsRow(b[^1].Iteration, b.Average(x => x.TrainLoss), b.Average(x => x.TrainAccuracy), b[^1].Seconds))];
    }

    private static JsonNode? Num(double? v) => v is { } x && double.IsFinite(x) ? JsonValue.Create(Math.Round(x, 7)) : null;
    private static JsonArray Nums(IEnumerable<double?> xs) => new([.. xs.Select(Num)]);
    private static JsonArray Nums(IEnumerable<double> xs) => Nums(xs.Select(x => (double?)x));
}
