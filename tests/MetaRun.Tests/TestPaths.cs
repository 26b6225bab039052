namespace MetaRun.Tests;

/// <summary>Where the repository, its configs and the shared real data sets are.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Configs => Path.Combine(RepoRoot, "configs");

    /// <summary>
    /// ../shared/datasets beside the repository, with the complete Omniglot. Its absence fails the
    /// real-data tests (CI has it): they are not skipped.
    /// </summary>
    public static string SharedDatasets
    {
        get
        {
            var root = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "datasets"));
            var omniglot = Path.Combine(root, "omniglot");
            if (!File.Exists(Path.Combine(omniglot, "images_background.zip")) || !File.Exists(Path.Combine(omniglot, "images_evaluation.zip")))
                throw new InvalidOperationException(
                    $"The real Omniglot is missing: expected {omniglot}/images_background.zip and images_evaluation.zip " +
                    "(the shared data sets beside the repository, ../shared/datasets). These tests need it and do not skip.");
            return root;
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
