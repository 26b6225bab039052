using MetaRun.Config;
using MetaRun.Training;

namespace MetaRun.Sweeps;

/// <summary>
/// What changed between the sweep a folder ran and the sweep file now: a run's config (from its
/// folder's config.yaml, the config it was trained with) and the final evaluation's settings.
/// A changed config under the same folder would mix two sweeps in one comparison; a changed
/// evaluation only needs the evaluation redone.
/// </summary>
public static class SweepChanges
{
    // Where a run lives and what it is called may differ without changing what it trains.
    private static readonly string[] Ignored = ["name", "output.dir", "data.root"];

    /// <summary>The sweep's final-evaluation settings as the manifest records them for an evaluated run.</summary>
    public static string EvalKey(SweepSpec spec) => $"split={spec.EvalSplit} episodes={spec.EvalEpisodes}";

    /// <summary>
    /// Every key whose value differs between the config <paramref name="runDir"/> was trained with
    /// and <paramref name="now"/>, as "key: old → new"; empty when they agree or the run never started.
    /// </summary>
    public static IReadOnlyList<string> ConfigDifferences(string runDir, RunConfig now)
    {
        var path = RunDirectory.At(runDir).ConfigPath;
        if (!File.Exists(path)) return [];
        // Read as a config, so keys a run's config.yaml leaves out (those it never reads) compare as their defaults.
        RunConfig was;
        try { was = ConfigLoader.ParseResolved(File.ReadAllText(path), path); }
        catch (MetaRunException e) { return [$"{path} is not a readable config ({e.Message})"]; }
        return [.. ConfigKeys.Differences(was, now).Where(d => !Ignored.Contains(d.Key)).Select(d => $"{d.Key}: {d.Was} → {d.Now}")];
    }
}
