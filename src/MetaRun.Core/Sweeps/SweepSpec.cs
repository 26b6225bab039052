using System.Globalization;
using MetaRun.Config;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace MetaRun.Sweeps;

/// <summary>Resources and extra lines for the Slurm job array (all optional).</summary>
public sealed record SlurmOptions(string? Partition, string? Time, int CpusPerTask, string? Gpus, string? Mem, int? Throttle, IReadOnlyList<string> Extra);

/// <summary>One run of a sweep: a combination of the varying keys and a seed.</summary>
/// <param name="Index">0-based position; the Slurm array task id.</param>
/// <param name="Combination">1-based number of the key combination (seeds share it).</param>
/// <param name="Sets">Every --set the run's train gets, the sweep's fixed ones first.</param>
/// <param name="Varying">The keys that differ between the sweep's runs, with this run's values.</param>
public sealed record SweepRun(int Index, int Combination, string Name, long Seed, IReadOnlyList<string> Sets, IReadOnlyList<KeyValuePair<string, string>> Varying)
{
    public string Describe() => string.Join(" ", Varying.Select(kv => $"{kv.Key}={kv.Value}").Append($"seed={Seed}"));
}

/// <summary>
/// A sweep file: a base config, fixed overrides, a grid of keys with value lists and/or a list of
/// explicit combinations (crossed with the grid), seeds, the final evaluation and Slurm resources.
/// </summary>
public sealed class SweepSpec
{
    private static readonly string[] TopKeys = ["name", "config", "out", "set", "grid", "list", "seeds", "eval", "slurm"];

    public required string File { get; init; }
    public required string Name { get; init; }
    /// <summary>Absolute path of the base config (relative paths in the sweep file are relative to it).</summary>
    public required string BaseConfig { get; init; }
    /// <summary>Absolute path of the sweep's folder.</summary>
    public required string Folder { get; init; }
    public required IReadOnlyList<string> Sets { get; init; }
    public required IReadOnlyList<(string Key, IReadOnlyList<string> Values)> Grid { get; init; }
    public required IReadOnlyList<IReadOnlyList<KeyValuePair<string, string>>> List { get; init; }
    public required IReadOnlyList<long> Seeds { get; init; }
    public string EvalSplit { get; init; } = "test";
    /// <summary>Episodes of the final meta-test; 0 skips it.</summary>
    public int EvalEpisodes { get; init; } = 600;
    public SlurmOptions Slurm { get; init; } = new(null, null, 0, null, null, null, []);

    /// <summary>The most runs a sweep may expand to unless told otherwise (--max-runs): a typo in a grid must not fill the disk.</summary>
    public const long DefaultMaxRuns = 10_000;

    /// <summary>The most runs this sweep may expand to.</summary>
    public long MaxRuns { get; set; } = DefaultMaxRuns;

    /// <summary>How many runs the sweep expands to (grid × list × seeds), counted without expanding it.</summary>
    public double RunCount => Grid.Aggregate(1.0, (n, g) => n * g.Values.Count) * Math.Max(1, List.Count) * Seeds.Count;

    public static SweepSpec Load(string path)
    {
        if (!System.IO.File.Exists(path)) throw new ConfigException($"{path}: sweep file not found");
        var file = Path.GetFullPath(path);
        var stream = new YamlStream();
        try { stream.Load(new StringReader(System.IO.File.ReadAllText(file))); }
        catch (YamlException e) { throw new ConfigException($"{path}:{e.Start.Line}: invalid YAML: {e.Message}"); }
        // YamlDotNet's scanner throws this on some malformed plain scalars (a lone '[' line).
        catch (InvalidOperationException) { throw new ConfigException($"{path}: invalid YAML (an unclosed bracket or quote?)"); }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new ConfigException($"{path}: the sweep file must be a mapping of keys to values");

        string At(YamlNode n) => $"{path}:{n.Start.Line}";
        foreach (var k in root.Children.Keys)
            if (k is not YamlScalarNode { Value: { } key } || !TopKeys.Contains(key))
                throw new ConfigException($"{At(k)}: unknown key '{k}' (known keys: {string.Join(", ", TopKeys)})");
        YamlNode? Get(YamlMappingNode m, string key) => m.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;
        string? Scalar(YamlMappingNode m, string key) => Get(m, key) switch
        {
            null => null,
            YamlScalarNode s => s.Value,
            var n => throw new ConfigException($"{At(n)}: '{key}' must be a single value"),
        };

        var dir = Path.GetDirectoryName(file)!;
        var configText = Scalar(root, "config") ?? throw new ConfigException($"{path}: 'config' (the base config file) is required");
        var baseConfig = Path.GetFullPath(Path.Combine(dir, configText));
        var config = ConfigLoader.Load(baseConfig);
        var name = Scalar(root, "name") ?? Path.GetFileNameWithoutExtension(file);
        if (name.Length == 0 || name.IndexOfAny(['/', '\\']) >= 0) throw new ConfigException($"{path}: 'name' must be a plain name, not '{name}'");
        var folder = Path.GetFullPath(Scalar(root, "out") ?? Path.Combine(config.Output.Dir, name));

        var sets = new List<string>();
        if (Get(root, "set") is { } setNode)
        {
            if (setNode is not YamlSequenceNode seq) throw new ConfigException($"{At(setNode)}: 'set' must be a list of key=value strings");
            foreach (var item in seq)
            {
                var s = (item as YamlScalarNode)?.Value;
                if (s == null || s.IndexOf('=') <= 0) throw new ConfigException($"{At(item)}: 'set' entries must be key=value strings, like algorithm.iterations=200");
                sets.Add(s);
            }
        }

        var grid = new List<(string, IReadOnlyList<string>)>();
        if (Get(root, "grid") is { } gridNode)
        {
            if (gridNode is not YamlMappingNode gm) throw new ConfigException($"{At(gridNode)}: 'grid' must map config keys to lists of values");
            foreach (var (k, v) in gm.Children)
            {
                var key = ((YamlScalarNode)k).Value!;
                if (v is not YamlSequenceNode { Children.Count: > 0 } values)
                    throw new ConfigException($"{At(v)}: grid key '{key}' needs a non-empty list of values, like [0.1, 0.4]");
                grid.Add((key, values.Children.Select(ValueText).ToList()));
            }
        }

        var list = new List<IReadOnlyList<KeyValuePair<string, string>>>();
        if (Get(root, "list") is { } listNode)
        {
            if (listNode is not YamlSequenceNode ls) throw new ConfigException($"{At(listNode)}: 'list' must be a list of key: value mappings");
            foreach (var item in ls)
            {
                if (item is not YamlMappingNode im) throw new ConfigException($"{At(item)}: each 'list' entry must be a mapping of config keys to values");
                list.Add(im.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ValueText(kv.Value))).ToList());
            }
        }

        var seeds = new List<long>();
        if (Get(root, "seeds") is { } seedNode)
        {
            if (seedNode is not YamlSequenceNode ss || ss.Children.Count == 0) throw new ConfigException($"{At(seedNode)}: 'seeds' must be a non-empty list of integers");
            foreach (var s in ss)
                seeds.Add(s is YamlScalarNode { Value: { } t } && long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed)
                    ? seed : throw new ConfigException($"{At(s)}: 'seeds' entries must be integers"));
            if (seeds.Distinct().Count() != seeds.Count) throw new ConfigException($"{At(seedNode)}: 'seeds' lists a seed twice");
        }
        else seeds.Add(config.Seed);

        var (split, episodes) = ("test", 600);
        if (Get(root, "eval") is { } evalNode)
        {
            if (evalNode is not YamlMappingNode em) throw new ConfigException($"{At(evalNode)}: 'eval' must be a section with split and episodes");
            foreach (var k in em.Children.Keys)
                if (((YamlScalarNode)k).Value is not ("split" or "episodes")) throw new ConfigException($"{At(k)}: unknown key 'eval.{k}' (known keys: episodes, split)");
            split = Scalar(em, "split") ?? split;
            if (split is not ("test" or "val")) throw new ConfigException($"{At(evalNode)}: 'eval.split' is '{split}'; expected one of: test, val");
            if (Scalar(em, "episodes") is { } e && (!int.TryParse(e, NumberStyles.Integer, CultureInfo.InvariantCulture, out episodes) || episodes < 0))
                throw new ConfigException($"{At(evalNode)}: 'eval.episodes' must be a non-negative integer (0 skips the final evaluation), not '{e}'");
        }

        var slurm = new SlurmOptions(null, null, 0, null, null, null, []);
        if (Get(root, "slurm") is { } slurmNode)
        {
            if (slurmNode is not YamlMappingNode sm) throw new ConfigException($"{At(slurmNode)}: 'slurm' must be a section");
            string[] known = ["partition", "time", "cpus_per_task", "gpus", "mem", "throttle", "extra"];
            foreach (var k in sm.Children.Keys)
                if (!known.Contains(((YamlScalarNode)k).Value)) throw new ConfigException($"{At(k)}: unknown key 'slurm.{k}' (known keys: {string.Join(", ", known.Order())})");
            int? Int(string key)
            {
                var t = Scalar(sm, key);
                if (t == null) return null;
                return int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 1 ? n
                    : throw new ConfigException($"{At(Get(sm, key)!)}: 'slurm.{key}' must be a positive integer, not '{t}'");
            }
            var extra = new List<string>();
            if (Get(sm, "extra") is { } extraNode)
            {
                if (extraNode is not YamlSequenceNode es) throw new ConfigException($"{At(extraNode)}: 'slurm.extra' must be a list of #SBATCH option strings");
                extra.AddRange(es.Children.Select(c => (c as YamlScalarNode)?.Value ?? throw new ConfigException($"{At(c)}: 'slurm.extra' entries must be strings")));
            }
            slurm = new SlurmOptions(Scalar(sm, "partition"), Scalar(sm, "time"), Int("cpus_per_task") ?? 0, Scalar(sm, "gpus"), Scalar(sm, "mem"), Int("throttle"), extra);
        }

        return new SweepSpec
        {
            File = file, Name = name, BaseConfig = baseConfig, Folder = folder, Sets = sets, Grid = grid, List = list,
            Seeds = seeds, EvalSplit = split, EvalEpisodes = episodes, Slurm = slurm,
        };
    }

    // A value in a grid or list is passed on as --set text: scalars as written, lists in flow style.
    private static string ValueText(YamlNode node) => node switch
    {
        YamlScalarNode s => s.Value ?? "",
        YamlSequenceNode seq => "[" + string.Join(", ", seq.Children.Select(ValueText)) + "]",
        _ => throw new ConfigException($"line {node.Start.Line}: a sweep value must be a single value or a list"),
    };

    /// <summary>Every combination × seed, in a fixed order: grid (last key fastest), then list entries, then seeds.</summary>
    public IReadOnlyList<SweepRun> Expand()
    {
        if (RunCount > MaxRuns)
            throw new ConfigException(
                $"{File}: the sweep expands to {RunCount.ToString("#,0", CultureInfo.InvariantCulture)} runs ({string.Join(" × ", Grid.Select(g => $"{g.Values.Count} {g.Key}").Concat(List.Count > 0 ? [$"{List.Count} list entries"] : []).Append($"{Seeds.Count} seeds"))}), " +
                $"more than the limit of {MaxRuns.ToString("#,0", CultureInfo.InvariantCulture)}; shrink the grid, or raise the limit with --max-runs N");
        IEnumerable<IReadOnlyList<KeyValuePair<string, string>>> combos = [[]];
        foreach (var (key, values) in Grid)
            combos = combos.SelectMany(c => values.Select(v => (IReadOnlyList<KeyValuePair<string, string>>)[.. c, KeyValuePair.Create(key, v)]));
        if (List.Count > 0)
            combos = combos.SelectMany(c => List.Select(l => (IReadOnlyList<KeyValuePair<string, string>>)[.. c, .. l]));
        var all = combos.ToList();

        // Keys whose value is the same in every combination are not part of the run names.
        var keys = all.SelectMany(c => c.Select(kv => kv.Key)).Distinct().ToList();
        var varying = keys.Where(k => all.Select(c => c.LastOrDefault(kv => kv.Key == k).Value).Distinct().Count() > 1).ToList();
        var shortNames = varying.ToDictionary(k => k, k => varying.Count(o => o.Split('.')[^1] == k.Split('.')[^1]) > 1 ? k : k.Split('.')[^1]);

        var runs = new List<SweepRun>();
        for (var ci = 0; ci < all.Count; ci++)
        {
            var combo = all[ci];
            var vary = varying.Select(k => KeyValuePair.Create(k, combo.LastOrDefault(kv => kv.Key == k).Value ?? "")).ToList();
            foreach (var seed in Seeds)
            {
                var parts = vary.Select(kv => $"{shortNames[kv.Key]}={kv.Value}").Append($"seed={seed}");
                var name = Sanitize(string.Join("_", parts));
                var sets = Sets.Concat(combo.Select(kv => $"{kv.Key}={kv.Value}")).Append($"seed={seed}").ToList();
                runs.Add(new SweepRun(runs.Count, ci + 1, name, seed, sets, vary));
            }
        }
        var clash = runs.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        if (clash != null)
            throw new ConfigException($"{File}: combinations {string.Join(" and ", clash.Select(r => r.Combination).Distinct())} give the same run name '{clash.Key}' (they differ only in values that read the same once made file-safe)");
        return runs;
    }

    /// <summary>
    /// Parses every run's config exactly as its train will, before anything starts, so a bad
    /// value anywhere fails the whole sweep at once, naming the combination.
    /// </summary>
    public IReadOnlyList<SweepRun> ExpandAndValidate(CancellationToken cancel = default)
    {
        var runs = Expand();
        var total = runs.Max(r => r.Combination);
        foreach (var r in runs)
        {
            // Thousands of configs take a while to parse: a Ctrl-C or SIGTERM stops it (exit 130).
            cancel.ThrowIfCancellationRequested();
            try { ConfigLoader.Load(BaseConfig, r.Sets); }
            catch (ConfigException e)
            {
                throw new ConfigException($"{File}: combination {r.Combination} of {total} ({r.Describe()}): {e.Message}");
            }
        }
        return runs;
    }

    // Folder names stay plain: a list value [20, 20] reads 20-20, anything unusual becomes '-'.
    private static string Sanitize(string name) =>
        new(name.Where(c => c is not ('[' or ']' or ' ')).Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '=' or '-' or '+' ? c : '-').ToArray());
}
