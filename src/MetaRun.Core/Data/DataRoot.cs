namespace MetaRun.Data;

/// <summary>
/// Where data sets live. The root is the first of: the --data-root option, the config's
/// data.root, the METARUN_DATA_ROOT environment variable, and ~/.metarun/datasets. Data sets are
/// folders under it named after the data set: omniglot/, miniimagenet/. A relative root is
/// taken from the current directory; a leading ~ is the home folder.
/// </summary>
public static class DataRoot
{
    public const string EnvironmentVariable = "METARUN_DATA_ROOT";

    /// <summary>The default root when nothing else names one: ~/.metarun/datasets.</summary>
    public static string Default => Path.Combine(Home(), ".metarun", "datasets");

    /// <summary>The data root as an absolute path (it may not exist).</summary>
    public static string Resolve(string? dataRootOverride, string? configRoot) => ResolveWithSource(dataRootOverride, configRoot).Path;

    /// <summary>The data root and a phrase saying where it came from, for messages.</summary>
    public static (string Path, string Source) ResolveWithSource(string? dataRootOverride, string? configRoot)
    {
        if (!string.IsNullOrWhiteSpace(dataRootOverride)) return (Expand(dataRootOverride), "--data-root");
        if (!string.IsNullOrWhiteSpace(configRoot)) return (Expand(configRoot), "data.root in the config");
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env)) return (Expand(env), $"${EnvironmentVariable}");
        return (Default, "the default data root");
    }

    /// <summary>
    /// The folder of one data set under the root; a DataException naming the missing folder (and
    /// how the root was chosen) when the root or the data set is not there.
    /// </summary>
    public static string DatasetDir(string root, string source, string dataset)
    {
        if (!Directory.Exists(root))
            throw new DataException($"data root {root} (from {source}) does not exist; pass --data-root, set data.root or ${EnvironmentVariable}, or run 'metarun data fetch {dataset}'");
        var dir = Path.Combine(root, dataset);
        if (!Directory.Exists(dir))
            throw new DataException($"{dir}: {dataset} data set not found under the data root {root} (from {source}); see docs/data.md for the expected layout{(dataset == Omniglot.Dataset ? " or run 'metarun data fetch omniglot'" : "")}");
        return dir;
    }

    internal static string Expand(string path)
    {
        path = path.Trim();
        if (path == "~") path = Home();
        else if (path.StartsWith("~/", StringComparison.Ordinal)) path = Path.Combine(Home(), path[2..]);
        return Path.GetFullPath(path);
    }

    internal static string Home()
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (string.IsNullOrEmpty(home)) home = Environment.GetEnvironmentVariable("HOME") ?? "/tmp";
        return home;
    }
}

/// <summary>Knobs of the data layer that are not part of a run's config (tests and tools set them).</summary>
public sealed class DataOptions
{
    /// <summary>Folder of the decoded-image cache; null: $METARUN_CACHE_DIR, else ~/.cache/metarun.</summary>
    public string? CacheDir { get; init; }

    /// <summary>Read and write the decoded-image cache (false: always decode, write nothing).</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>Threads for decoding and verifying images; 0 uses every core. Results never depend on it.</summary>
    public int MaxDegreeOfParallelism { get; init; }

    /// <summary>
    /// Threads one Sample call fills its episodes with (default 1: sampling usually runs on the
    /// prefetch thread beside training, and one thread already makes well over 5,000 Omniglot
    /// episodes/s); 0 uses every core. Results never depend on it.
    /// </summary>
    public int SamplingThreads { get; init; } = 1;

    /// <summary>Progress and cache messages (one line each); null is silent.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// The splits the command draws from, each with the classes it needs there (null: every
    /// split, at the config's ways). A split it does not read may be missing from a folder data
    /// set (test/ while training, val/ without validation) and is not checked against the
    /// episode shapes. Built by <see cref="TaskFamilies.Needs"/>.
    /// </summary>
    public IReadOnlyDictionary<Split, int>? Splits { get; init; }

    /// <summary>Whether the command reads <paramref name="split"/>.</summary>
    public bool Reads(Split split) => Splits?.ContainsKey(split) ?? true;

    public static DataOptions Default { get; } = new();

    internal int Degree => MaxDegreeOfParallelism > 0 ? MaxDegreeOfParallelism : Environment.ProcessorCount;

    internal ParallelOptions Parallel => new() { MaxDegreeOfParallelism = Degree };

    internal int SamplingDegree => SamplingThreads > 0 ? SamplingThreads : Environment.ProcessorCount;
}
