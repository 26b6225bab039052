using System.Globalization;
using System.Text.Json;
using CsvHelper;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Evaluation;
using MetaRun.Training;

namespace MetaRun.Reports;

/// <summary>A run's headline meta-test result, chosen from its evaluations (see <see cref="RunFolder.Headline"/>).</summary>
/// <param name="Checkpoint">Which checkpoint it scored: "best" or "last".</param>
public sealed record EvalResult(string Metric, double Mean, double Ci95, int Episodes, string Split, long Iteration, string Checkpoint = "best");

/// <summary>What compare and report read from one run folder.</summary>
public sealed class RunFolder
{
    public required string Dir { get; init; }
    public required string Name { get; init; }
    public required RunConfig Config { get; init; }
    public required string ConfigYaml { get; init; }
    /// <summary>The resolved config flattened to key paths (model.hidden → "[40, 40]").</summary>
    public required IReadOnlyDictionary<string, string> Keys { get; init; }
    public required IReadOnlyList<MetricsRow> Metrics { get; init; }
    /// <summary>The headline test result (<see cref="Headline"/>), or null when the run has none.</summary>
    public EvalResult? Eval => Headline is { Mean: { } m, Ci95: { } ci } h ? new EvalResult(h.Metric, m, ci, h.Episodes, h.Split, h.Iteration, h.CheckpointName) : null;
    /// <summary>Every evaluation of the run (its evaluation store; a lone eval.json from before the store).</summary>
    public IReadOnlyList<StoredEvaluation> Evaluations { get; init; } = [];
    /// <summary>
    /// The evaluation that stands for the run: clean (no attack), on the test split, at the run's
    /// own test settings (episode shape, inner steps and rate, seed), of the best checkpoint
    /// (the last where the run never validated); among several, the latest checkpoint iteration,
    /// then the most episodes, then the newest.
    /// </summary>
    public StoredEvaluation? Headline => Chosen.Headline;
    /// <summary>The other evaluations by label ("val", "fgsm ε=0.1", "5w5s", "10 steps", …): the newest of each.</summary>
    public IReadOnlyDictionary<string, StoredEvaluation> Variants => Chosen.Variants;
    /// <summary>
    /// The out-of-distribution figures that go with the headline (`eval --ood`): the newest
    /// clean test record with them at the run's own settings, of the headline's checkpoint where
    /// there is one. Its own record since `eval --ood` kept one; older stores had them in the plain record.
    /// </summary>
    public StoredEvaluation? Ood => Chosen.Ood;

    private (StoredEvaluation? Headline, Dictionary<string, StoredEvaluation> Variants, StoredEvaluation? Ood)? chosen;
    private (StoredEvaluation? Headline, Dictionary<string, StoredEvaluation> Variants, StoredEvaluation? Ood) Chosen => chosen ??= Choose();
    /// <summary>What could not be read (a damaged metrics.csv, a duplicate run), to show beside the result.</summary>
    public List<string> Warnings { get; init; } = [];

    public bool IsRegression => Config.Data.IsRegression;

    /// <summary>What its validation and test columns measure.</summary>
    public HeadlineMetric Metric => HeadlineMetric.For(IsRegression);

    /// <summary>The best validation score: highest accuracy, or lowest loss for regression.</summary>
    public double? BestValidation => IsRegression
        ? Metrics.Where(m => m.ValLoss != null).Select(m => m.ValLoss!.Value).DefaultIfEmpty(double.NaN).Min() is var l && double.IsFinite(l) ? l : null
        : Metrics.Where(m => m.ValAccuracy != null).Select(m => m.ValAccuracy!.Value).DefaultIfEmpty(double.NaN).Max() is var a && double.IsFinite(a) ? a : null;

    public static bool IsRun(string dir) => File.Exists(RunDirectory.At(dir).ConfigPath);

    public static RunFolder? TryRead(string dir) => IsRun(dir) ? Read(dir) : null;

    public static RunFolder Read(string dir)
    {
        var run = RunDirectory.At(dir);
        var configPath = run.ConfigPath;
        var yaml = File.ReadAllText(configPath);
        var config = ConfigLoader.Parse(yaml, configPath);
        var warnings = new List<string>();
        return new RunFolder
        {
            Warnings = warnings,
            Dir = Path.GetFullPath(dir),
            Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))),
            Config = config,
            ConfigYaml = yaml,
            Keys = ConfigKeys.Flatten(config),
            Metrics = MetricsCsv.Read(run.MetricsCsvPath, warnings),
            Evaluations = ReadEvaluations(dir, run, warnings),
        };
    }

    private static IReadOnlyList<StoredEvaluation> ReadEvaluations(string dir, RunDirectory run, List<string> warnings)
    {
        var stored = EvaluationStore.Read(dir, warnings.Add);
        if (stored.Count > 0 || !File.Exists(run.EvalResult)) return stored;
        try
        {
            return [EvaluationStore.Parse(run.EvalResult, File.ReadAllText(run.EvalResult))];
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new MetaRunException(ExitCodes.Failure, $"{run.EvalResult}: unreadable eval result: {e.Message}");
        }
    }

    private (StoredEvaluation? Headline, Dictionary<string, StoredEvaluation> Variants, StoredEvaluation? Ood) Choose()
    {
        var (c, all) = (Config, Evaluations);
        var steps = Algorithms.AlgorithmRegistry.Get(c.Algorithm.Name).TestInnerSteps(c.Algorithm);
        var ways = IsRegression ? 1 : c.Data.Test.Ways;
        bool OwnSettings(StoredEvaluation e) => e.Ways == ways && e.Shots == c.Data.Test.Shots && e.Queries == c.Data.Test.Queries
            && e.InnerSteps == steps && (double.IsNaN(e.InnerLr) || e.InnerLr == c.Algorithm.InnerLr) && (e.Seed == 0 || e.Seed == c.Seed);
        var clean = all.Where(e => e.Attack == null && e.Split == "test" && OwnSettings(e)).ToList();
        var candidates = clean.Where(e => e.Variant == null && e.Mean != null).ToList();
        // A run only scored for the step curve: its point at the run's own step count is the same evaluation.
        if (candidates.Count == 0) candidates = [.. clean.Where(e => e.Variant == AdaptationCurve.Variant && e.Mean != null)];
        var best = candidates.Where(e => e.CheckpointName == "best").ToList();
        var pool = best.Count > 0 ? best : candidates.Where(e => e.CheckpointName == "last").ToList();
        var headline = pool.OrderBy(e => e.Iteration).ThenBy(e => e.Episodes).ThenBy(e => e.Recorded).LastOrDefault();
        var variants = new Dictionary<string, StoredEvaluation>();
        // Variant records are shown by what they add: the OOD figures beside the headline, the step curve as a figure.
        foreach (var e in all.Where(e => e != headline && e.Value != null && e.Variant == null))
            variants[VariantLabel(e, headline, ways, steps)] = e;
        // The same evaluation at fewer episodes or an older checkpoint says nothing the headline does not.
        variants.Remove("");
        var ood = clean.Where(e => e.OodAurocEntropy != null)
            .OrderBy(e => e.CheckpointName == headline?.CheckpointName).ThenBy(e => e.Iteration).ThenBy(e => e.Episodes).ThenBy(e => e.Recorded).LastOrDefault();
        return (headline, variants, ood);
    }

    /// <summary>What sets an evaluation apart from the run's own test settings, as a short label.</summary>
    private string VariantLabel(StoredEvaluation e, StoredEvaluation? headline, int ways, int steps)
    {
        var parts = new List<string>();
        if (e.Split != "test") parts.Add(e.Split);
        if (e.CheckpointName != (headline?.CheckpointName ?? "best")) parts.Add(e.CheckpointName);
        if (e.Ways != ways || e.Shots != Config.Data.Test.Shots) parts.Add(IsRegression ? $"K={e.Shots}" : $"{e.Ways}w{e.Shots}s");
        if (e.Queries != Config.Data.Test.Queries) parts.Add($"{e.Queries} queries");
        if (e.InnerSteps != steps) parts.Add($"{e.InnerSteps} steps");
        if (!double.IsNaN(e.InnerLr) && e.InnerLr != Config.Algorithm.InnerLr) parts.Add($"α={e.InnerLr.ToString("0.####", CultureInfo.InvariantCulture)}");
        if (e.Seed != 0 && e.Seed != Config.Seed) parts.Add($"seed {e.Seed}");
        if (e.Attack != null) parts.Add(e.Attack);
        return string.Join(" ", parts);
    }

    /// <summary>
    /// The run folders named by <paramref name="paths"/>: a run folder itself, or every run folder
    /// below a sweep (or any) folder, in name order.
    /// </summary>
    public static IReadOnlyList<RunFolder> Discover(IEnumerable<string> paths)
    {
        var runs = new List<RunFolder>();
        foreach (var p in paths)
        {
            if (!Directory.Exists(p)) throw new ConfigException($"{p}: no such folder");
            if (IsRun(p)) { runs.Add(Read(p)); continue; }
            var found = Directory.EnumerateDirectories(p, "*", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 3 })
                .Where(IsRun).Order(StringComparer.Ordinal).ToList();
            if (found.Count == 0) throw new ConfigException($"{p}: holds no run folders (a run folder has a config.yaml)");
            runs.AddRange(found.Select(Read));
        }
        // A copied run folder (cp -r run run.bak) has the same config and seed: one run, not two seeds.
        var distinct = new List<RunFolder>();
        foreach (var r in runs.DistinctBy(r => r.Dir))
        {
            if (distinct.FirstOrDefault(d => d.ConfigYaml == r.ConfigYaml) is { } same)
            {
                same.Warnings.Add($"{r.Dir} has the same config and seed as {same.Dir}: counted once (a copy of the run?)");
                continue;
            }
            distinct.Add(r);
        }
        return distinct;
    }
}
