using YamlDotNet.RepresentationModel;

namespace MetaRun.Config;

/// <summary>A config as flat key paths, for comparing two configs key by key.</summary>
public static class ConfigKeys
{
    /// <summary>The resolved config flattened to key paths and their YAML text (model.hidden → "[40, 40]").</summary>
    public static Dictionary<string, string> Flatten(RunConfig config)
    {
        var yaml = ConfigLoader.ToYaml(config);
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
                    keys[prefix] = Text(s);
                    break;
                case YamlScalarNode sc:
                    keys[prefix] = sc.Value ?? "";
                    break;
            }
        }
        Walk(stream.Documents[0].RootNode, "");
        return keys;
    }

    /// <summary>A value as one line, lists and mappings (model.layers) included.</summary>
    private static string Text(YamlNode node) => node switch
    {
        YamlSequenceNode s => "[" + string.Join(", ", s.Children.Select(Text)) + "]",
        YamlMappingNode m => "{" + string.Join(", ", m.Children.Select(kv => $"{Text(kv.Key)}: {Text(kv.Value)}")) + "}",
        _ => ((YamlScalarNode)node).Value ?? "",
    };

    /// <summary>The keys whose values differ between two configs, with both values, in key order.</summary>
    public static IReadOnlyList<(string Key, string Was, string Now)> Differences(RunConfig was, RunConfig now)
    {
        var (a, b) = (Flatten(was), Flatten(now));
        return [.. a.Keys.Union(b.Keys).Order(StringComparer.Ordinal)
            .Where(k => a.GetValueOrDefault(k, "") != b.GetValueOrDefault(k, ""))
            .Select(k => (k, a.GetValueOrDefault(k, ""), b.GetValueOrDefault(k, "")))];
    }
}
