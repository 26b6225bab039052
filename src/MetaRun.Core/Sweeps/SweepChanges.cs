using MetaRun.Config;
using MetaRun.Training;
using YamlDotNet.RepresentationModel;

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
        Dictionary<string, string> was;
        try { was = Flatten(File.ReadAllText(path)); }
        catch (YamlDotNet.Core.YamlException) { return [$"{path} is not readable YAML"]; }
        var current = Flatten(ConfigLoader.ToYaml(now));
        return [.. was.Keys.Union(current.Keys).Where(k => !Ignored.Contains(k)).Order(StringComparer.Ordinal)
            .Where(k => was.GetValueOrDefault(k) != current.GetValueOrDefault(k))
            .Select(k => $"{k}: {was.GetValueOrDefault(k) ?? "(absent)"} → {current.GetValueOrDefault(k) ?? "(absent)"}")];
    }

    private static Dictionary<string, string> Flatten(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var result = new Dictionary<string, string>();
        if (stream.Documents.Count > 0) Walk(stream.Documents[0].RootNode, "", result);
        return result;
    }

    private static void Walk(YamlNode node, string prefix, Dictionary<string, string> into)
    {
        switch (node)
        {
            case YamlMappingNode m:
                foreach (var (k, v) in m.Children) Walk(v, prefix.Length == 0 ? ((YamlScalarNode)k).Value! : $"{prefix}.{((YamlScalarNode)k).Value}", into);
                break;
            case YamlSequenceNode s:
                into[prefix] = "[" + string.Join(", ", s.Children.Select(c => c is YamlScalarNode sc ? sc.Value : c.ToString())) + "]";
                break;
            case YamlScalarNode sc:
                into[prefix] = sc.Value ?? "";
                break;
        }
    }
}
