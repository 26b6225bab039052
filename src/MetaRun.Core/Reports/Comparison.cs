using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsvHelper;
using MetaRun.Algorithms;

namespace MetaRun.Reports;

/// <summary>One row of the comparison: the runs that differ only by seed.</summary>
public sealed record ComparisonRow(
    IReadOnlyList<string> KeyValues,
    IReadOnlyList<RunFolder> Runs,
    double? BestValidation,
    double? TestMean,
    double? TestCi95,
    double? SeedSpread,
    IReadOnlyList<double?>? VariantMeans = null)
{
    public int Seeds => Runs.Count;

    /// <summary>
    /// The headline evaluations' calibration and uncertainty figures, means over the seeds that
    /// have them, in <see cref="Comparison.UncertaintyHeaders"/>' order (NLL, ECE, Brier, OOD
    /// AUROC by entropy; Gaussian NLL and 90% coverage for regression).
    /// </summary>
    public IReadOnlyList<double?> Uncertainty { get; init; } = [];
    public string Label(IReadOnlyList<string> keys) =>
        keys.Count == 0 ? Runs[0].Config.Name : string.Join(" ", keys.Select((k, i) => $"{k.Split('.')[^1]}={KeyValues[i]}"));
}

/// <summary>
/// The config keys that differ between runs, and per group of runs that differ only by seed: the
/// best validation score and the meta-test mean with its 95% interval (means across seeds), the
/// spread between seeds (sample standard deviation of the seeds' test means) and the seed count.
/// </summary>
public sealed class Comparison
{
    // Keys that always differ between runs and say nothing of the setting.
    private static readonly string[] Ignored = ["name", "seed", "output.dir", "data.root"];

    public required IReadOnlyList<string> Keys { get; init; }
    public required IReadOnlyList<ComparisonRow> Rows { get; init; }
    /// <summary>What the validation and test columns measure (accuracy, or MSE for regression).</summary>
    public required HeadlineMetric Headline { get; init; }
    /// <summary>"accuracy" or "mse", as in eval.json.</summary>
    public string Metric => Headline.Name;
    /// <summary>The runs' other evaluations, a column each (labels as <see cref="RunFolder.Variants"/>): validation, attacks, other shots.</summary>
    public IReadOnlyList<string> Variants { get; init; } = [];

    /// <summary>
    /// One comparison per headline metric: runs judged by accuracy and runs judged by MSE never
    /// share a column.
    /// </summary>
    public static IReadOnlyList<Comparison> PerMetric(IReadOnlyList<RunFolder> runs)
    {
        if (runs.Count == 0) throw new ConfigException("no runs to compare");
        return [.. runs.GroupBy(r => r.IsRegression).OrderBy(g => g.Key).Select(g => Of(g.ToList()))];
    }

    public static Comparison Of(IReadOnlyList<RunFolder> runs)
    {
        if (runs.Count == 0) throw new ConfigException("no runs to compare");
        if (runs.Select(r => r.IsRegression).Distinct().Count() > 1)
            throw new ConfigException("runs judged by accuracy and by MSE cannot share one table; compare them apart");
        var variants = runs.SelectMany(r => r.Variants.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var allKeys = runs.SelectMany(r => r.Keys.Keys).Distinct().Where(k => !Ignored.Contains(k)).Order(StringComparer.Ordinal).ToList();
        var keys = allKeys.Where(k => runs.Select(r => r.Keys.GetValueOrDefault(k, "")).Distinct().Count() > 1).ToList();
        var rows = runs
            .GroupBy(r => string.Join("\u0001", keys.Select(k => r.Keys.GetValueOrDefault(k, ""))))
            .Select(g =>
            {
                var group = g.OrderBy(r => r.Config.Seed).ToList();
                var tests = group.Where(r => r.Eval != null).Select(r => r.Eval!).ToList();
                var vals = group.Select(r => r.BestValidation).Where(v => v != null).Select(v => v!.Value).ToList();
                return new ComparisonRow(
                    keys.Select(k => group[0].Keys.GetValueOrDefault(k, "")).ToList(),
                    group,
                    vals.Count > 0 ? vals.Average() : null,
                    tests.Count > 0 ? tests.Average(t => t.Mean) : null,
                    tests.Count > 0 ? tests.Average(t => t.Ci95) : null,
                    tests.Count > 1 ? StdDev(tests.Select(t => t.Mean).ToList()) : null,
                    variants.Select(v => group.Select(r => r.Variants.GetValueOrDefault(v)?.Value).Where(x => x != null).Select(x => x!.Value).ToList() is { Count: > 0 } xs ? xs.Average() : (double?)null).ToList())
                {
                    Uncertainty = [.. UncertaintyColumns.Select(u => group.Select(u.Of).Where(x => x != null).Select(x => x!.Value).ToList() is { Count: > 0 } us ? us.Average() : (double?)null)],
                };
            })
            .ToList();
        // Columns only for the figures some run has, so older runs' tables stay as they were.
        var present = Enumerable.Range(0, UncertaintyColumns.Count).Where(i => rows.Any(r => r.Uncertainty[i] != null)).ToList();
        rows = [.. rows.Select(r => r with { Uncertainty = [.. present.Select(i => r.Uncertainty[i])] })];
        return new Comparison { Keys = keys, Rows = rows, Headline = runs[0].Metric, Variants = variants, Uncertainties = [.. present.Select(i => UncertaintyColumns[i])] };
    }

    /// <summary>A calibration or uncertainty figure of a run: its column's name, where it comes from, which way is better (null: closest to its nominal value).</summary>
    public sealed record UncertaintyColumn(string Name, Func<RunFolder, double?> Of, bool? HigherIsBetter);

    /// <summary>The headline's calibration (classification) or intervals (regression), and the OOD figures of `eval --ood`'s record.</summary>
    public static readonly IReadOnlyList<UncertaintyColumn> UncertaintyColumns =
    [
        new("test NLL", r => r.Headline?.Nll, false), new("test ECE", r => r.Headline?.Ece, false), new("test Brier", r => r.Headline?.Brier, false),
        new("OOD AUROC (entropy)", r => r.Ood?.OodAurocEntropy, true), new("OOD AUROC (max probability)", r => r.Ood?.OodAurocMaxProbability, true),
        new("test Gaussian NLL", r => r.Headline?.GaussianNll, false), new("test 90% coverage", r => r.Headline?.Coverage90, null),
    ];

    /// <summary>The calibration and uncertainty columns some run of the table has (<see cref="ComparisonRow.Uncertainty"/>).</summary>
    public IReadOnlyList<UncertaintyColumn> Uncertainties { get; init; } = [];
    public IReadOnlyList<string> UncertaintyHeaders => [.. Uncertainties.Select(u => u.Name)];

    private static double StdDev(IReadOnlyList<double> xs)
    {
        var mean = xs.Average();
        return Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1));
    }

    /// <summary>The columns that name a row rather than measure it: the run folders, then the differing keys.</summary>
    public int LabelColumns => Keys.Count + 1;

    public IReadOnlyList<string> Headers =>
        ["runs", .. Keys, $"best val {(Headline.HigherIsBetter ? "accuracy" : "loss")}", $"test {Metric}", "±95% CI", "seed sd", "seeds", .. Variants.Select(v => $"{Metric} ({v})"), .. UncertaintyHeaders];

    /// <summary>Which evaluation the test column holds, for a footnote.</summary>
    public string TestColumnNote =>
        "test: the clean test-split evaluation of each run's best checkpoint (its last where it never validated) at the run's own test settings; " +
        "other evaluations are in their own columns" + (Variants.Count > 0 ? "" : " (none yet)");

    /// <summary>The table as text cells: the run folders' names (a row's seeds), the keys, then numbers to 4 decimals (empty where not measured).</summary>
    public IReadOnlyList<IReadOnlyList<string>> Cells() =>
        Rows.Select(r => (IReadOnlyList<string>)[string.Join(" ", r.Runs.Select(x => Path.GetFileName(x.Dir.TrimEnd('/')))), .. r.KeyValues, F(r.BestValidation), F(r.TestMean), F(r.TestCi95), F(r.SeedSpread), r.Seeds.ToString(CultureInfo.InvariantCulture),
            .. (r.VariantMeans ?? []).Select(F), .. r.Uncertainty.Select(F)]).ToList();

    private static string F(double? v) => v is { } x ? x.ToString("0.0000", CultureInfo.InvariantCulture) : "";

    public string ToCsv()
    {
        using var w = new StringWriter();
        using (var csv = CsvWriter.Create(w, new CsvWriterOptions(), true))
        {
            csv.WriteRecord([.. Headers]);
            foreach (var row in Cells()) csv.WriteRecord([.. row]);
        }
        return w.ToString();
    }

    public string ToMarkdown()
    {
        static string Esc(string s) => s.Replace("|", "\\|");
        var b = new StringBuilder();
        b.AppendLine("| " + string.Join(" | ", Headers.Select(Esc)) + " |");
        b.AppendLine("|" + string.Join("|", Headers.Select((_, i) => i < LabelColumns ? "---" : "---:")) + "|");
        foreach (var row in Cells()) b.AppendLine("| " + string.Join(" | ", row.Select(Esc)) + " |");
        return b.ToString();
    }

    public string ToJson()
    {
        static JsonNode? N(double? v) => v is { } x ? JsonValue.Create(Math.Round(x, 6)) : null;
        var rows = new JsonArray();
        foreach (var r in Rows)
        {
            var keys = new JsonObject();
            for (var i = 0; i < Keys.Count; i++) keys[Keys[i]] = r.KeyValues[i];
            rows.Add(new JsonObject
            {
                ["keys"] = keys,
                ["best_validation"] = N(r.BestValidation),
                ["test_mean"] = N(r.TestMean),
                ["test_ci95"] = N(r.TestCi95),
                ["seed_sd"] = N(r.SeedSpread),
                ["seeds"] = r.Seeds,
                ["other_evaluations"] = new JsonObject([.. Variants.Select((v, i) => KeyValuePair.Create(v, N(r.VariantMeans?[i])))]),
                ["uncertainty"] = new JsonObject([.. UncertaintyHeaders.Select((h, i) => KeyValuePair.Create(h, N(r.Uncertainty[i])))]),
                ["runs"] = new JsonArray([.. r.Runs.Select(x => (JsonNode)JsonValue.Create(x.Dir))]),
            });
        }
        var o = new JsonObject { ["metric"] = Metric, ["test_column"] = TestColumnNote, ["keys"] = new JsonArray([.. Keys.Select(k => (JsonNode)JsonValue.Create(k))]), ["rows"] = rows };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
