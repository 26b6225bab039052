namespace MetaRun.Tests;

/// <summary>Where the repository, its configs and the shared real data sets are.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Configs => Path.Combine(RepoRoot, "configs");

    /// <summary>../shared/datasets beside the repository (CI and every session have it).</summary>
    public static string SharedDatasets
    {
        get
        {
            var dir = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "datasets"));
            if (!Directory.Exists(Path.Combine(dir, "omniglot")))
                throw new InvalidOperationException($"the real Omniglot is expected at {dir}/omniglot (../shared/datasets beside the repository)");
            return dir;
        }
    }

    public static string NewTempDir(string prefix)
    {
        var d = Path.Combine(Path.GetTempPath(), $"metarun-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        return d;
    }

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MetaRun.sln"))) return d.FullName;
        throw new InvalidOperationException("cannot find MetaRun.sln above " + AppContext.BaseDirectory);
    }
}
