namespace MetaRun.Tests;

/// <summary>The small config most tests train, break or resume, and where they write it.</summary>
internal static class TestConfigs
{
    /// <summary>Sinusoid MAML, two iterations, no validation: a run of well under a second.</summary>
    public const string TinySinusoid = """
        name: t
        data:
          dataset: sinusoid
          train: {shots: 5, queries: 5}
        algorithm:
          name: maml
          meta_batch_size: 2
          iterations: 2
        eval:
          interval: 0
        """;

    /// <summary>Writes <paramref name="yaml"/> as <paramref name="file"/> in a new temporary folder.</summary>
    public static (string Dir, string Path) Write(string yaml, string file = "c.yaml")
    {
        var dir = TestPaths.NewTempDir("config");
        var path = System.IO.Path.Combine(dir, file);
        File.WriteAllText(path, yaml);
        return (dir, path);
    }
}
