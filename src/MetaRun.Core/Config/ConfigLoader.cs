using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using MetaRun.Algorithms;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace MetaRun.Config;

/// <summary>
/// Reads a run's YAML into <see cref="RunConfig"/>, applying --set overrides with the same checks.
/// Unknown keys, wrong types and out-of-range values are errors naming the file, key and line.
/// </summary>
public static class ConfigLoader
{
    /// <summary>The largest config file or --set value accepted; real configs are a few hundred bytes.</summary>
    public const int MaxBytes = 1 << 20;

    /// <summary>The deepest nesting of sections and lists accepted (real configs nest 3 deep).</summary>
    public const int MaxDepth = 32;

    public static RunConfig Load(string path, IEnumerable<string>? overrides = null) => Parse(ReadText(path), path, overrides);

    /// <summary>
    /// A config read only for its data (`data show`): the data checks apply, the algorithm's do
    /// not, so a 3-way test episode of a 5-way MAML config can be drawn.
    /// </summary>
    public static RunConfig LoadData(string path, IEnumerable<string>? overrides = null) => Parse(ReadText(path), path, overrides, resolved: false, dataOnly: true);

    /// <summary>
    /// The file's text, at most <see cref="MaxBytes"/> read: a device or a huge file given as
    /// config is refused without reading it whole.
    /// </summary>
    private static string ReadText(string path)
    {
        if (Directory.Exists(path)) throw new ConfigException($"{path}: is a folder, not a config file");
        if (!File.Exists(path)) throw new ConfigException($"{path}: config file not found");
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var buffer = new byte[MaxBytes + 1];
            var n = 0;
            while (n < buffer.Length && f.Read(buffer, n, buffer.Length - n) is var r and > 0) n += r;
            if (n > MaxBytes) throw new ConfigException($"{path}: config file is larger than {MaxBytes / 1024} KiB; this is not a MetaRun config");
            return new UTF8Encoding(false).GetString(buffer, 0, n).TrimStart('\uFEFF');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ConfigException($"{path}: cannot read: {e.Message}"); }
    }

    public static RunConfig Parse(string yaml, string source, IEnumerable<string>? overrides = null) => Parse(yaml, source, overrides, resolved: false);

    /// <param name="resolved">A config MetaRun wrote itself (a checkpoint's, a hash's copy): keys an algorithm ignores are
    /// accepted there, so checkpoints written before that check existed still open.</param>
    private static RunConfig Parse(string yaml, string source, IEnumerable<string>? overrides, bool resolved, bool dataOnly = false)
    {
        var root = ParseMapping(yaml, source);
        var overridden = new Dictionary<YamlNode, string>(ReferenceEqualityComparer.Instance);
        foreach (var o in overrides ?? []) ApplyOverride(root, o, overridden);
        var config = new RunConfig();
        var locations = new Dictionary<string, string>();
        Bind(config, root, "", source, overridden, locations);
        CheckAcrossKeys(config, key => locations.TryGetValue(key, out var where) ? where : source, resolved ? [] : locations.Keys, dataOnly);
        CheckValuesAndData(config, key => locations.GetValueOrDefault(key), source);
        config.KeyLocations = locations;
        config.Source = source;
        return config;
    }

    /// <summary>A config that MetaRun wrote (embedded in a checkpoint); see <see cref="Parse(string, string, IEnumerable{string}?, bool)"/>.</summary>
    public static RunConfig ParseResolved(string yaml, string source) => Parse(yaml, source, null, resolved: true);

    /// <summary>
    /// Applies --set overrides to a config in place, with the same checks as in a file (used by
    /// evaluation, which changes a few keys of a checkpoint's config). Only the named keys change.
    /// </summary>
    public static void Override(RunConfig config, IEnumerable<string> overrides)
    {
        var root = new YamlMappingNode();
        var overridden = new Dictionary<YamlNode, string>(ReferenceEqualityComparer.Instance);
        foreach (var o in overrides) ApplyOverride(root, o, overridden);
        var locations = new Dictionary<string, string>();
        Bind(config, root, "", "--set", overridden, locations);
        CheckAcrossKeys(config, key => locations.TryGetValue(key, out var where) ? where : "--set", locations.Keys);
    }

    /// <summary>
    /// A run's config.yaml: the resolved config without the keys this run never reads (another
    /// algorithm's algorithm.* keys, the MLP's widths for a convolutional network and the reverse,
    /// the image settings of a regression task). Those are at their defaults (the loader refuses
    /// them otherwise), so the file loads back to the same config.
    /// </summary>
    public static string ToRunYaml(RunConfig config)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(ToYaml(config)));
        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        YamlMappingNode Section(string name) => (YamlMappingNode)root.Children[new YamlScalarNode(name)];
        void Drop(YamlMappingNode section, params string[] keys) { foreach (var k in keys) section.Children.Remove(new YamlScalarNode(k)); }

        var algorithm = Algorithms.AlgorithmRegistry.Get(config.Algorithm.Name);
        var algorithmSection = Section("algorithm");
        foreach (var key in algorithmSection.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value!).ToList())
            if (!Algorithms.AlgorithmRegistry.OuterKeys.Contains(key) && !algorithm.Keys.Contains(key)) Drop(algorithmSection, key);
        var model = config.Model.Name == ModelName.Auto ? (config.Data.Dataset.HasImages() ? ModelName.Conv4 : ModelName.Mlp) : config.Model.Name;
        if (config.Model.Layers.Count > 0) Drop(Section("model"), "filters", "downsample", "hidden");
        else if (model == ModelName.Mlp) Drop(Section("model"), "filters", "downsample");
        else Drop(Section("model"), model == ModelName.Conv4 ? ["hidden"] : ["hidden", "downsample"]);
        if (config.Model.Layers.Count == 0) Drop(Section("model"), "layers");
        if (config.Model.Init == null) Drop(Section("model"), "init");
        if (config.Model.Freeze.Count == 0) Drop(Section("model"), "freeze");
        if (config.Model.Normalize == InputNormalization.None) Drop(Section("model"), "normalize");
        // A blank data.root was never read: the data came from --data-root, $METARUN_DATA_ROOT or the
        // default folder, and the run's history.jsonl names the folder it was.
        if (string.IsNullOrEmpty(config.Data.Root)) Drop(Section("data"), "root");
        if (config.Data.IsRegression)
        {
            Drop(Section("data"), "root", "channels", "split_ratio", "skip_small_classes", "split", "split_seed", "image_size");
            foreach (var episodes in new[] { "train", "test" }) Drop((YamlMappingNode)Section("data").Children[new YamlScalarNode(episodes)], "ways", "within_alphabet");
        }
        if (!config.Data.Dataset.IsEnvironment()) Drop(Section("data"), "navigation", "observe_goal");
        using var writer = new StringWriter();
        stream.Save(writer, assignAnchors: false);
        // YamlStream ends a document with "...": a run's file is one plain mapping.
        return writer.ToString().Replace("\n...\n", "\n").TrimEnd() + "\n";
    }

    /// <summary>The fully resolved config as YAML, every key included.</summary>
    public static string ToYaml(RunConfig config) =>
        new SerializerBuilder().WithNamingConvention(UnderscoredNamingConvention.Instance).WithTypeConverter(new SettingConverter()).Build().Serialize(config);

    /// <summary>
    /// A hash of everything that shapes the trained weights. The name, output folder, iteration
    /// budget, validation and checkpoint schedules, the execution mode, workers, threads and the distributed timeout
    /// are left out, so a resumed run may extend its budget or change how often it reports.
    /// </summary>
    public static string Hash(RunConfig config)
    {
        var copy = ParseResolved(ToYaml(config), "(resolved)");
        copy.Name = "";
        copy.Output = new OutputConfig();
        copy.Algorithm.Iterations = 1;
        copy.Eval = new EvalConfig();
        copy.Checkpoint = new CheckpointConfig();
        // How the tasks are scheduled changes only the summation order, not what is trained.
        copy.Execution = Execution.Auto;
        // Checkpointing the inner loop also changes only the summation order (and the memory), so a run may turn it on when resumed.
        copy.Algorithm.CheckpointInnerSteps = false;
        // Tasks are summed in task order whatever the worker count, so the layout on the machine may change too.
        copy.Workers = 0;
        copy.Threads = 0;
        copy.Distributed = new DistributedConfig();
        return System.Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(WithoutLaterKeysAtDefault(ToYaml(copy)))))[..16].ToLowerInvariant();
    }

    // Keys added after configs were first hashed. At their defaults they are left out of the hash,
    // so every config hashes as it did before they existed and older checkpoints still resume.
    private static readonly string[] LaterKeys =
    [
        "data.navigation", "data.observe_goal", "model.layers", "model.init", "model.freeze", "model.normalize",
        "algorithm.trajectories", "algorithm.trpo_max_kl", "algorithm.finetune", "algorithm.samples", "algorithm.test_samples",
        "algorithm.kl_weight", "algorithm.particles", "algorithm.chaser_steps", "output.tensorboard",
        "algorithm.imaml_lambda", "algorithm.cg_steps", "algorithm.cg_damping", "algorithm.l2l_unroll", "algorithm.l2l_output_scale",
        "algorithm.outer_grad_clip", "algorithm.checkpoint_inner_steps",
    ];

    private static string WithoutLaterKeysAtDefault(string yaml)
    {
        var defaults = ToYaml(new RunConfig()).Split('\n').ToList();
        var lines = yaml.Split('\n').ToList();
        static int Find(List<string> ls, string section, string name)
        {
            var start = ls.IndexOf(section + ":");
            if (start < 0) return -1;
            for (var i = start + 1; i < ls.Count && ls[i].StartsWith("  ", StringComparison.Ordinal); i++)
                if (ls[i].StartsWith($"  {name}:", StringComparison.Ordinal)) return i;
            return -1;
        }
        foreach (var key in LaterKeys)
        {
            var (section, name) = (key[..key.IndexOf('.')], key[(key.IndexOf('.') + 1)..]);
            int at = Find(lines, section, name), d = Find(defaults, section, name);
            // A value at its default is one line equal to the default's (a list or mapping set by the user is longer).
            if (at >= 0 && d >= 0 && lines[at] == defaults[d]) lines.RemoveAt(at);
        }
        return string.Join('\n', lines);
    }

    private static YamlMappingNode ParseMapping(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            CheckShape(yaml, source);
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{source}:{e.Start.Line}: invalid YAML: {Inner(e).Message}");
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner throws this on some malformed input (found by fuzzing) instead of a YamlException.
            throw new ConfigException($"{source}: invalid YAML (the parser could not read it; look for unbalanced brackets or quotes)");
        }
        if (stream.Documents.Count == 0) return new YamlMappingNode();
        return stream.Documents[0].RootNode as YamlMappingNode
               ?? throw new ConfigException($"{source}:{stream.Documents[0].RootNode.Start.Line}: the config must be a mapping of keys to values");
    }

    /// <summary>
    /// Size, nesting depth and document count, checked on the parser's event stream before the
    /// document is built: YamlDotNet builds nodes recursively, so a hostile nesting (60,000
    /// brackets) would otherwise overflow the stack and kill the process. A second document
    /// (after ---) would be silently ignored, so it is refused.
    /// </summary>
    private static void CheckShape(string yaml, string source)
    {
        if (Encoding.UTF8.GetByteCount(yaml) > MaxBytes) throw new ConfigException($"{source}: larger than {MaxBytes / 1024} KiB; this is not a MetaRun config");
        var parser = new Parser(new StringReader(yaml));
        var depth = 0;
        var documents = 0;
        while (parser.MoveNext())
        {
            switch (parser.Current)
            {
                case YamlDotNet.Core.Events.DocumentStart start when ++documents > 1:
                    throw new ConfigException($"{source}:{start.Start.Line}: a second YAML document; a config is one document (remove the '---' and what follows, or merge it into the first)");
                case YamlDotNet.Core.Events.MappingStart or YamlDotNet.Core.Events.SequenceStart when ++depth > MaxDepth:
                    throw new ConfigException($"{source}:{parser.Current!.Start.Line}: nested more than {MaxDepth} levels deep; this is not a MetaRun config");
                case YamlDotNet.Core.Events.MappingEnd or YamlDotNet.Core.Events.SequenceEnd:
                    depth--;
                    break;
            }
        }
    }

    private static Exception Inner(Exception e) => e.InnerException is YamlException ye ? Inner(ye) : e;

    private static void ApplyOverride(YamlMappingNode root, string text, Dictionary<YamlNode, string> overridden)
    {
        var eq = text.IndexOf('=');
        if (eq <= 0) throw new ConfigException($"--set {text}: expected key.path=value");
        var keys = text[..eq].Trim().Split('.');
        var valueText = text[(eq + 1)..];
        var node = root;
        for (var i = 0; i < keys.Length - 1; i++)
        {
            if (!node.Children.TryGetValue(new YamlScalarNode(keys[i]), out var child))
            {
                // Keys the override brings are its own: an error about them names the --set, not the file.
                var key = new YamlScalarNode(keys[i]);
                child = new YamlMappingNode();
                overridden[key] = overridden[child] = $"--set {text}";
                node.Children[key] = child;
            }
            node = child as YamlMappingNode ?? throw new ConfigException($"--set {text}: '{string.Join('.', keys[..(i + 1)])}' is not a section");
        }
        YamlNode value;
        try
        {
            var yaml = "v: " + valueText;
            CheckShape(yaml, $"--set {text}");
            var s = new YamlStream();
            s.Load(new StringReader(yaml));
            value = ((YamlMappingNode)s.Documents[0].RootNode).Children[new YamlScalarNode("v")];
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException)
        {
            value = new YamlScalarNode(valueText);
        }
        catch (ConfigException e)
        {
            // CheckShape names "--set TEXT:LINE"; the line of a one-line value says nothing.
            throw new ConfigException(e.Message.Replace($"--set {text}:1:", $"--set {text}:", StringComparison.Ordinal));
        }
        Merge(node, new YamlScalarNode(keys[^1]), value, $"--set {text}", overridden);
    }

    /// <summary>
    /// Sets one key. A section given for a section (--set algorithm={iterations: 3}) changes only
    /// the keys it names, like the dotted form, instead of dropping every other key of the file's
    /// section. Every node the override brings is marked as coming from it, so an error inside it
    /// names the --set, never a line of the file.
    /// </summary>
    private static void Merge(YamlMappingNode into, YamlScalarNode key, YamlNode value, string origin, Dictionary<YamlNode, string> overridden)
    {
        if (value is YamlMappingNode section && into.Children.TryGetValue(key, out var existing) && existing is YamlMappingNode target)
        {
            foreach (var (k, v) in section.Children)
            {
                if (k is not YamlScalarNode sk) throw new ConfigException($"{origin}: keys must be plain names");
                Merge(target, sk, v, origin, overridden);
            }
            return;
        }
        into.Children.Remove(key);
        overridden[key] = origin;
        into.Children[key] = value;
        overridden[key] = origin;
        foreach (var n in value.AllNodes) overridden[n] = origin;
    }

    /// <summary>
    /// The known key a typo most likely meant: the nearest by edit distance (case ignored), if
    /// within a third of its length; null when nothing is that close.
    /// </summary>
    internal static string? Closest(string typed, IEnumerable<string> known)
    {
        static int Distance(string a, string b)
        {
            var d = new int[b.Length + 1];
            for (var j = 0; j <= b.Length; j++) d[j] = j;
            for (var i = 1; i <= a.Length; i++)
            {
                var diagonal = d[0];
                d[0] = i;
                for (var j = 1; j <= b.Length; j++)
                {
                    var above = d[j];
                    d[j] = Math.Min(Math.Min(d[j] + 1, d[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                    diagonal = above;
                }
            }
            return d[b.Length];
        }
        var lower = typed.ToLowerInvariant();
        var best = known.Select(k => (Key: k, Distance: Distance(lower, k))).OrderBy(c => c.Distance).ThenBy(c => c.Key, StringComparer.Ordinal).FirstOrDefault();
        return best.Key != null && best.Distance <= Math.Max(1, best.Key.Length / 3) ? best.Key : null;
    }

    private static string Where(YamlNode node, string source, Dictionary<YamlNode, string> overridden) =>
        overridden.TryGetValue(node, out var o) ? o : $"{source}:{node.Start.Line}";

    /// <summary>A property's key: InnerLr ↔ inner_lr.</summary>
    internal static string KeyOf(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "_" : "") + char.ToLowerInvariant(c) : c.ToString()));

    /// <summary>Rules that involve several keys; the error points at the key that breaks them.</summary>
    private static void CheckAcrossKeys(RunConfig c, Func<string, string> where, IReadOnlyCollection<string> given, bool dataOnly = false)
    {
        var known = AlgorithmRegistry.All.FirstOrDefault(a => a.Name == c.Algorithm.Name)
                    ?? throw new ConfigException($"{where("algorithm.name")}: 'algorithm.name' is '{c.Algorithm.Name}'; expected one of: {string.Join(", ", AlgorithmRegistry.Names)}");
        if (!dataOnly && !c.Data.IsRegression && !known.AnyTestWays && c.Data.Test.Ways != c.Data.Train.Ways)
            throw new ConfigException($"{where("data.test.ways")}: 'data.test.ways' is {c.Data.Test.Ways} but data.train.ways is {c.Data.Train.Ways}; the output layer has one unit per training way, so evaluation uses the same number of ways (only {string.Join(", ", AlgorithmRegistry.All.Where(a => a.AnyTestWays).Select(a => a.Name))} may differ)");
        if (c.Data.Dataset != Dataset.Folder)
        {
            if (c.Data.Channels != 0) throw new ConfigException($"{where("data.channels")}: 'data.channels' is only for data.dataset folder ({c.Data.Dataset.Yaml()} has fixed channels)");
            if (c.Data.Dataset != Dataset.Features)
            {
                if (c.Data.SplitRatio.Count > 0) throw new ConfigException($"{where("data.split_ratio")}: 'data.split_ratio' is only for data.dataset folder and features");
                if (c.Data.SkipSmallClasses) throw new ConfigException($"{where("data.skip_small_classes")}: 'data.skip_small_classes' is only for data.dataset folder and features");
            }
        }
        else if (c.Data.Channels == 2)
            throw new ConfigException($"{where("data.channels")}: 'data.channels' is 2; expected 1 (gray) or 3 (RGB)");
        if (c.Data.Dataset != Dataset.Omniglot)
            foreach (var (name, e) in new[] { ("train", c.Data.Train), ("test", c.Data.Test) })
                if (e.WithinAlphabet) throw new ConfigException($"{where($"data.{name}.within_alphabet")}: 'data.{name}.within_alphabet' needs data.dataset omniglot (only Omniglot has alphabets)");
        if (c.Execution == Execution.Batched && !known.Batched)
            throw new ConfigException($"{where("execution")}: 'execution' is batched, but {c.Algorithm.Name} runs its tasks one by one (batched: {string.Join(", ", AlgorithmRegistry.All.Where(a => a.Batched).Select(a => a.Name))})");
        if (c.Data.Dataset.IsEnvironment() != known.Environments)
            throw new ConfigException(known.Environments
                ? $"{where("data.dataset")}: 'data.dataset' is {c.Data.Dataset.Yaml()}, but {c.Algorithm.Name} learns from environments (data.dataset: navigation2d)"
                : $"{where("algorithm.name")}: 'algorithm.name' {c.Algorithm.Name} learns from labelled episodes, but data.dataset {c.Data.Dataset.Yaml()} is an environment; use {string.Join(" or ", AlgorithmRegistry.All.Where(a => a.Environments).Select(a => a.Name))}");
        if (!c.Data.Dataset.IsEnvironment() && (c.Data.Navigation != NavigationVariant.Paper || c.Data.ObserveGoal))
            throw new ConfigException($"{where(c.Data.ObserveGoal ? "data.observe_goal" : "data.navigation")}: 'data.{(c.Data.ObserveGoal ? "observe_goal" : "navigation")}' is only for data.dataset navigation2d");
        if (c.Data.IsRegression && !known.SupportsRegression)
            throw new ConfigException($"{where("algorithm.name")}: 'algorithm.name' {c.Algorithm.Name} classifies, but data.dataset {c.Data.Dataset.Yaml()} is regression");
        if (known.Check?.Invoke(c.Algorithm) is { } wrong)
            throw new ConfigException($"{where(wrong.Key)}: {wrong.Problem}");
        // A key the algorithm never reads would be silently ignored: refuse it unless it is left at its default.
        var defaults = new AlgorithmConfig();
        foreach (var prop in typeof(AlgorithmConfig).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            var key = KeyOf(prop.Name);
            if (AlgorithmRegistry.OuterKeys.Contains(key) || known.Keys.Contains(key) || !given.Contains("algorithm." + key)) continue;
            if (Equals(prop.GetValue(c.Algorithm), prop.GetValue(defaults))) continue;
            var readers = AlgorithmRegistry.All.Where(a => a.Keys.Contains(key)).Select(a => a.Name);
            throw new ConfigException($"{where("algorithm." + key)}: 'algorithm.{key}' is not used by {c.Algorithm.Name} (only by {string.Join(", ", readers)}); remove it");
        }
    }

    /// <summary>
    /// Single values that are well-formed but cannot work, and episode shapes the data set cannot
    /// supply: all found here, before any data is read or anything is written, never at the first
    /// forward pass or the first validation.
    /// </summary>
    private static void CheckValuesAndData(RunConfig c, Func<string, string?> located, string source)
    {
        string where(string key) => located(key) ?? source;
        // The name becomes a folder under output.dir: it must stay one plain folder name.
        if (c.Name.Trim().Length == 0)
            throw new ConfigException($"{where("name")}: 'name' is empty; it names the run's folder");
        if (c.Name is "." or ".." || c.Name.IndexOfAny(['/', '\\', '\0']) >= 0 || c.Name.Any(char.IsControl))
            throw new ConfigException($"{where("name")}: 'name' is '{c.Name}'; it names the run's folder under output.dir, so it may not contain '/', '\\', control characters or be '.' or '..'");
        if (c.Output.Dir.Trim().Length == 0)
            throw new ConfigException($"{where("output.dir")}: 'output.dir' is empty; give a folder (the default is runs)");
        if (c.Algorithm.OuterLr <= 0)
            throw new ConfigException($"{where("algorithm.outer_lr")}: 'algorithm.outer_lr' is {c.Algorithm.OuterLr.ToString(CultureInfo.InvariantCulture)}; it must be greater than 0 (0 never changes the model)");
        var image = c.Data.Dataset.HasImages();
        if (c.Model.Name == ModelName.Mlp && image)
            throw new ConfigException($"{where("model.name")}: 'model.name' is mlp, but data.dataset {c.Data.Dataset.Yaml()} is images; use conv4 or resnet12 (or auto)");
        if (c.Model.Name is ModelName.Conv4 or ModelName.ResNet12 or ModelName.ResNet18 or ModelName.ResNet50 && !image)
            throw new ConfigException($"{where("model.name")}: 'model.name' is {c.Model.Name.Yaml()}, but data.dataset {c.Data.Dataset.Yaml()} is not images; use mlp (or auto)");
        Models.ModelFactory.CheckLayers(c, where);
        Data.TaskFamilies.CheckEpisodes(c, located, source);
    }

    private static void Bind(object target, YamlMappingNode node, string prefix, string source, Dictionary<YamlNode, string> overridden, Dictionary<string, string> locations)
    {
        var props = target.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetCustomAttribute<YamlIgnoreAttribute>() == null)
            .ToDictionary(p => KeyOf(p.Name));
        foreach (var (k, v) in node.Children)
        {
            var key = (k as YamlScalarNode)?.Value ?? throw new ConfigException($"{source}:{k.Start.Line}: keys must be plain names");
            var path = prefix + key;
            if (!props.TryGetValue(key, out var prop))
            {
                var known = string.Join(", ", props.Keys.Order());
                var guess = Closest(key, props.Keys) is { } g ? $"did you mean '{prefix}{g}'? " : "";
                throw new ConfigException($"{Where(k, source, overridden)}: unknown key '{path}' ({guess}known keys{(prefix.Length > 0 ? $" of '{prefix.TrimEnd('.')}'" : "")}: {known})");
            }
            var where = Where(v, source, overridden);
            locations[path] = where;
            if (IsSection(prop.PropertyType))
            {
                if (v is YamlScalarNode { Value: null or "" or "~" or "null" }) continue;
                var section = v as YamlMappingNode ?? throw new ConfigException($"{where}: '{path}' must be a section of keys");
                Bind(prop.GetValue(target)!, section, path + ".", source, overridden, locations);
                continue;
            }
            if (prop.PropertyType == typeof(List<object>))
            {
                // model.layers: kept as plain YAML values (Models.LayerYaml reads them), every key's line remembered.
                var seq = v as YamlSequenceNode ?? throw new ConfigException($"{where}: '{path}' must be a list of layers");
                prop.SetValue(target, seq.Children.Select((c, i) => Raw(c, $"{path}[{i}]", source, overridden, locations)).ToList());
                continue;
            }
            var value = Convert(v, prop.PropertyType, path, where, MayBeEmpty(prop));
            Validate(prop, value, path, where);
            prop.SetValue(target, value);
        }
    }

    /// <summary>A YAML node as strings, lists (List&lt;object&gt;) and mappings (Dictionary&lt;string, object&gt;), each place's line in <paramref name="locations"/>.</summary>
    private static object Raw(YamlNode node, string path, string source, Dictionary<YamlNode, string> overridden, Dictionary<string, string> locations)
    {
        locations[path] = Where(node, source, overridden);
        switch (node)
        {
            case YamlSequenceNode seq:
                return seq.Children.Select((c, i) => Raw(c, $"{path}[{i}]", source, overridden, locations)).ToList();
            case YamlMappingNode map:
                var d = new Dictionary<string, object>();
                foreach (var (k, v) in map.Children)
                {
                    var key = (k as YamlScalarNode)?.Value ?? throw new ConfigException($"{Where(k, source, overridden)}: keys must be plain names");
                    d[key] = Raw(v, $"{path}.{key}", source, overridden, locations);
                }
                return d;
            default:
                return ((YamlScalarNode)node).Value ?? "";
        }
    }

    private static bool IsSection(Type t) => t.IsClass && t != typeof(string) && !t.IsGenericType;

    private static object? Convert(YamlNode node, Type type, string path, string where, bool mayBeEmpty = false)
    {
        if (type == typeof(List<int>))
        {
            var seq = node as YamlSequenceNode ?? throw new ConfigException($"{where}: '{path}' must be a list of integers, like [40, 40]");
            return seq.Children.Select(c => (int)Convert(c, typeof(int), path, where)!).ToList();
        }
        if (type == typeof(List<string>))
        {
            var seq = node as YamlSequenceNode ?? throw new ConfigException($"{where}: '{path}' must be a list of names, like [conv1, layer1]");
            return seq.Children.Select(c => (string)Convert(c, typeof(string), path, where)!).ToList();
        }
        if (type == typeof(List<double>))
        {
            var seq = node as YamlSequenceNode ?? throw new ConfigException($"{where}: '{path}' must be a list of numbers, like [0.6, 0.2, 0.2]");
            return seq.Children.Select(c => (double)Convert(c, typeof(double), path, where)!).ToList();
        }
        var scalar = node as YamlScalarNode ?? throw new ConfigException($"{where}: '{path}' must be a single value, not a {(node is YamlSequenceNode ? "list" : "section")}");
        var s = scalar.Value ?? "";
        var isNull = scalar.Style == ScalarStyle.Plain && s is "" or "~" or "null";
        if (type == typeof(string)) return isNull ? (mayBeEmpty ? null : throw new ConfigException($"{where}: '{path}' needs a value")) : s;
        if (type.IsEnum)
        {
            if (isNull) throw new ConfigException($"{where}: '{path}' needs a value");
            return Settings.TryParse(type, s, out var setting) ? setting
                : throw new ConfigException($"{where}: '{path}' is '{s}'; expected one of: {string.Join(", ", Settings.Spelled(type))}");
        }
        var inv = CultureInfo.InvariantCulture;
        if (type == typeof(int) && int.TryParse(s, NumberStyles.Integer, inv, out var i)) return i;
        if (type == typeof(long) && long.TryParse(s, NumberStyles.Integer, inv, out var l)) return l;
        if (type == typeof(double) && double.TryParse(s, NumberStyles.Float, inv, out var d) && double.IsFinite(d)) return d;
        if (type == typeof(bool) && bool.TryParse(s, out var b)) return b;
        var kind = type == typeof(int) || type == typeof(long) ? "an integer" : type == typeof(double) ? "a number" : type == typeof(bool) ? "true or false" : type.Name;
        throw new ConfigException($"{where}: '{path}' must be {kind}, not '{s}'");
    }

    // Only a key declared nullable (data.root) may be left empty; every other string key needs a value.
    private static bool MayBeEmpty(PropertyInfo prop) => new NullabilityInfoContext().Create(prop).WriteState == NullabilityState.Nullable;

    private static void Validate(PropertyInfo prop, object? value, string path, string where)
    {
        if (prop.GetCustomAttribute<RangeAttribute>() is { } range && value != null)
        {
            var x = System.Convert.ToDouble(value, CultureInfo.InvariantCulture);
            if (x < range.Min || x > range.Max)
                throw new ConfigException($"{where}: '{path}' is {x.ToString(CultureInfo.InvariantCulture)}; it must be between {range.Min.ToString(CultureInfo.InvariantCulture)} and {range.Max.ToString(CultureInfo.InvariantCulture)}");
        }
        if (value is List<int> list && list.Any(n => n < 1))
            throw new ConfigException($"{where}: '{path}' entries must be positive integers");
        if (value is List<double> ratios && ratios.Count > 0 && (ratios.Count != 3 || ratios.Any(r => r < 0) || Math.Abs(ratios.Sum() - 1) > 1e-6))
            throw new ConfigException($"{where}: '{path}' must be three non-negative fractions (train, val, test) that add up to 1, like [0.6, 0.2, 0.2]");
    }
}
