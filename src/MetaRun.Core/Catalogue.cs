using MetaRun.Algorithms;
using MetaRun.Config;

namespace MetaRun;

/// <summary>
/// What `metarun list` shows, read from the registry, the config schema and the ready configs:
/// nothing here is written twice.
/// </summary>
public static class Catalogue
{
    /// <summary>One row per algorithm: name, paper, head, what it trains on, regression and batched support, the algorithm.* keys it reads.</summary>
    public static IReadOnlyList<IReadOnlyList<string>> Algorithms() =>
        [.. AlgorithmRegistry.All.Select(a => (IReadOnlyList<string>)[
            a.Name, a.Paper,
            a.Head switch { HeadKind.PerWay => "one output per way", HeadKind.PerTrainingClass => "one output per training class", _ => "none" },
            a.Environments ? "environments (rollouts)" : a.Trains switch { TrainsOn.Episodes => "episodes", TrainsOn.OwnBatches => "ordinary mini-batches", _ => "tasks of several domains" },
            a.SupportsRegression ? "yes" : "no",
            a.Batched ? "yes" : "no",
            string.Join(" ", a.Keys)])];

    public static readonly IReadOnlyList<string> AlgorithmHeaders = ["name", "paper", "head", "trains on", "regression", "batched", "algorithm.* keys it reads"];

    /// <summary>
    /// Every config key with its default; with <paramref name="algorithm"/>, the algorithm.* keys
    /// it does not read are left out. Keys read by only some algorithms say which.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<string>> Keys(string? algorithm)
    {
        var only = algorithm == null ? null : AlgorithmRegistry.Get(algorithm);
        var defaults = ConfigKeys.Flatten(new RunConfig());
        var rows = new List<IReadOnlyList<string>>();
        foreach (var (key, value) in defaults.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            var readers = "";
            if (key.StartsWith("algorithm.", StringComparison.Ordinal) && !AlgorithmRegistry.OuterKeys.Contains(key["algorithm.".Length..]))
            {
                var names = AlgorithmRegistry.All.Where(a => a.Keys.Contains(key["algorithm.".Length..])).Select(a => a.Name).ToList();
                if (only != null && !names.Contains(only.Name)) continue;
                readers = string.Join(", ", names);
            }
            rows.Add([key, value, readers]);
        }
        return rows;
    }

    public static readonly IReadOnlyList<string> KeyHeaders = ["key", "default", "read by"];

    /// <summary>The ready configs under <paramref name="root"/>: path, algorithm, data set and episode shape, and the published figure its header quotes.</summary>
    public static IReadOnlyList<IReadOnlyList<string>> Configs(string root)
    {
        var rows = new List<IReadOnlyList<string>>();
        foreach (var file in Directory.EnumerateFiles(root, "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            RunConfig config;
            try { config = ConfigLoader.Load(file, []); }
            catch (MetaRunException) { continue; }
            var published = File.ReadLines(file).TakeWhile(l => l.StartsWith('#'))
                .Select(l => l.TrimStart('#', ' ')).FirstOrDefault(l => l.StartsWith("Published", StringComparison.Ordinal)) ?? "";
            var shape = config.Data.Dataset.EpisodeText(config.Data.Test.Ways, config.Data.IsRegression ? config.Data.Train.Shots : config.Data.Test.Shots, config.Algorithm.Trajectories);
            rows.Add([Path.GetRelativePath(root, file), config.Algorithm.Name, config.Data.Dataset.Yaml(), shape, config.Algorithm.Iterations.ToString(System.Globalization.CultureInfo.InvariantCulture), published]);
        }
        return rows;
    }

    public static readonly IReadOnlyList<string> ConfigHeaders = ["config", "algorithm", "data", "episodes", "iterations", "published"];

    /// <summary>The ready configs folder: configs/ beside the program or in a folder above it (a source checkout, a bundle).</summary>
    public static string? ConfigsFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (Directory.Exists(Path.Combine(dir.FullName, "configs"))) return Path.Combine(dir.FullName, "configs");
        return null;
    }
}
