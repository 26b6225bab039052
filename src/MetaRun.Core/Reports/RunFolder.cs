using System.Globalization;
using System.Text.Json;
using CsvHelper;
using MetaRun.Config;
using MetaRun.Training;
using YamlDotNet.RepresentationModel;

namespace MetaRun.Reports;

/// <summary>A run's meta-test result as metarun eval wrote it (eval.json).</summary>
public sealed record EvalResult(string Metric, double Mean, double Ci95, int Episodes, string Split, long Iteration);

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
    public EvalResult? Eval { get; init; }
    /// <summary>What could not be read (a damaged metrics.csv, a duplicate run), to show beside the result.</summary>
    public List<string> Warnings { get; init; } = [];

    public bool IsRegression => Config.Data.Dataset == "sinusoid";

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
            Keys = Flatten(ConfigLoader.ToYaml(config)),
            Metrics = MetricsCsv.Read(run.MetricsCsvPath, warnings),
            Eval = ReadEval(run.EvalResult),
        };
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

    private static EvalResult? ReadEval(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var r = doc.RootElement;
            return new EvalResult(r.GetProperty("metric").GetString()!, r.GetProperty("mean").GetDouble(), r.GetProperty("ci95").GetDouble(),
                r.GetProperty("episodes").GetInt32(), r.GetProperty("split").GetString()!, r.GetProperty("iteration").GetInt64());
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new MetaRunException(ExitCodes.Failure, $"{path}: unreadable eval result: {e.Message}");
        }
    }

    private static Dictionary<string, string> Flatten(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var keys = new Dictionary<string, string>();
        void Walk(YamlNode node, string prefix)
        {
            switch (node)
            {
                case YamlMappingNode m:
                    foreach (var (k, v) in m.Children) Walk(v, prefix.Length == 0 ? ((YamlScalarNode)k).Value! : $"{prefix}.{((YamlScalarNode)k).Value}");
                    break;
                case YamlSequenceNode s:
                    keys[prefix] = "[" + string.Join(", ", s.Children.Select(c => (c as YamlScalarNode)?.Value)) + "]";
                    break;
                case YamlScalarNode sc:
                    keys[prefix] = sc.Value ?? "";
                    break;
            }
        }
        Walk(stream.Documents[0].RootNode, "");
        return keys;
    }
}
