using LibTorch;
using MetaRun.Config;

namespace MetaRun.Models;

public static class ModelFactory
{
    /// <summary>Builds the configured model with weights drawn from <paramref name="seed"/>.</summary>
    /// <param name="say">Where a model.layers network's description (parameter count, model.init's mapping report) goes; null: nowhere.</param>
    public static IModel Create(RunConfig config, long[] inputShape, int outputs, Device device, ulong seed, Action<string>? say = null)
    {
        using var g = new Generator(seed);
        if (SpecOf(config.Model) is { } spec) return Layered(config, spec, inputShape, outputs, device, g, say);
        var name = config.Model.Name == ModelName.Auto ? (config.Data.Dataset.HasImages() ? ModelName.Conv4 : ModelName.Mlp) : config.Model.Name;
        IModel model;
        switch (name)
        {
            case ModelName.Mlp:
                model = new Mlp(inputShape.Aggregate(1L, (a, b) => a * b), config.Model.Hidden, outputs, g, device);
                break;
            case ModelName.Conv4:
                if (inputShape.Length != 3) throw new ConfigException($"model.name: conv4 needs image data, but {config.Data.Dataset.Yaml()} gives inputs of shape [{string.Join(", ", inputShape)}]");
                var mini = config.Data.Dataset == Dataset.MiniImageNet;
                var filters = config.Model.Filters > 0 ? config.Model.Filters : mini ? 32 : 64;
                var maxPool = config.Model.Downsample == Downsample.Auto ? mini : config.Model.Downsample == Downsample.MaxPool;
                model = new Conv4(inputShape, filters, outputs, maxPool, g, device);
                break;
            case ModelName.ResNet12:
                if (inputShape.Length != 3) throw new ConfigException($"model.name: resnet12 needs image data, but {config.Data.Dataset.Yaml()} gives inputs of shape [{string.Join(", ", inputShape)}]");
                model = new ResNet12(inputShape, config.Model.Filters > 0 ? config.Model.Filters : 64, outputs, g, device);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(config), name, null);
        }
        // A built-in network's size is in docs (README's model keys); a line for it on every start
        // would be a second line beside a one-line error. A model.layers network says its size.
        return model;
    }

    /// <summary>The layer specification a model config asks for: model.layers, or a ready one (resnet18, resnet50); null for the built-in networks.</summary>
    /// <param name="where">A config key's place (file:line) for errors; null: the key alone.</param>
    public static NetworkSpec? SpecOf(ModelConfig m, Func<string, string>? where = null)
    {
        var spec = m.Layers.Count > 0 ? NetworkSpec.Parse(m.Layers, "model.layers", where ?? (k => k))
            : m.Name == ModelName.ResNet18 ? ReadySpecs.ResNet18(m.Filters > 0 ? m.Filters : 64)
            : m.Name == ModelName.ResNet50 ? ReadySpecs.ResNet50(m.Filters > 0 ? m.Filters : 64)
            : null;
        return spec != null && m.Normalize == InputNormalization.ImageNet ? spec with { Layers = [ReadySpecs.ImageNetNormalize(), .. spec.Layers] } : spec;
    }

    private static LayerNetwork Layered(RunConfig config, NetworkSpec spec, long[] inputShape, int outputs, Device device, Generator g, Action<string>? say)
    {
        var m = config.Model;
        TensorFile? init = null;
        if (m.Init != null)
        {
            var path = InitPath(m.Init);
            try { init = Safetensors.Load(path); }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                throw new CheckpointException($"{config.Where("model.init")}: model.init {m.Init}: cannot read it as safetensors ({e.Message})", e);
            }
        }
        using (init)
        {
            var frozen = Frozen(spec, m.Freeze);
            var net = new LayerNetwork(spec, inputShape, outputs, g, device, init?.Tensors, $"model.init {m.Init}", l => frozen.Contains(l));
            var what = m.Layers.Count > 0 ? $"{spec.Layers.Count} layers from model.layers" : m.Name.Yaml();
            say?.Invoke($"model: {what}, {net.TrainedCount + net.ConstantCount:N0} parameters ({net.TrainedCount:N0} trained{(net.ConstantCount > 0 ? $", {net.ConstantCount:N0} fixed" : "")})");
            if (net.Init is { } report) say?.Invoke(report.ToString());
            return net;
        }
    }

    /// <summary>The layers model.freeze names: a name or a prefix of names, or body (every layer before the head).</summary>
    private static HashSet<Layer> Frozen(NetworkSpec spec, IReadOnlyList<string> names)
    {
        var all = NetworkSpec.Flatten(spec.Body).ToList();
        var set = new HashSet<Layer>(ReferenceEqualityComparer.Instance);
        foreach (var n in names)
            foreach (var l in all.Where(l => n == "body" || l.Name == n || l.Name.StartsWith(n + ".", StringComparison.Ordinal)))
                set.Add(l);
        return set;
    }

    private static string InitPath(string path) =>
        path == "~" || path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path.TrimStart('~').TrimStart('/')) : path;

    /// <summary>
    /// model.layers, model.init, model.freeze and model.normalize checked at config time, before
    /// any data is read: the layers parse, their shapes fit the data set's inputs (errors name
    /// the layer's index and key with the shapes), the init file exists, freeze names layers.
    /// </summary>
    internal static void CheckLayers(RunConfig c, Func<string, string> where)
    {
        var m = c.Model;
        if (m.Layers.Count > 0 && m.Name != ModelName.Auto)
            throw new ConfigException($"{where("model.name")}: 'model.name' is {m.Name.Yaml()}, but model.layers also gives a network; keep one of them");
        var spec = SpecOf(m, where);
        string Only(string key) => $"{where("model." + key)}: 'model.{key}' needs a network given as layers (model.layers, or model.name resnet18 or resnet50), not {(m.Name == ModelName.Auto ? "the default network" : m.Name.Yaml())}";
        if (spec == null)
        {
            if (m.Init != null) throw new ConfigException(Only("init"));
            if (m.Freeze.Count > 0) throw new ConfigException(Only("freeze"));
            if (m.Normalize != InputNormalization.None) throw new ConfigException(Only("normalize"));
            return;
        }
        long[]? input = c.Data.Dataset == Dataset.Quadratic ? [Data.QuadraticTaskFamily.Dimension] : c.Data.IsRegression ? [1]
            : c.Data.Dataset is Dataset.Omniglot or Dataset.MiniImageNet or Dataset.Folder ? Data.ImageFormat.For(c.Data).InputShape
            : null;
        // A config path for each parsed layer: model.layers[3], model.layers[4].layers[1].
        var paths = new Dictionary<Layer, string>(ReferenceEqualityComparer.Instance);
        if (m.Layers.Count > 0)
        {
            void Index(IReadOnlyList<Layer> layers, string path)
            {
                for (var i = 0; i < layers.Count; i++)
                {
                    paths[layers[i]] = $"{path}[{i}]";
                    if (layers[i] is ResidualLayer r) { Index(r.Body, $"{path}[{i}].layers"); Index(r.Shortcut, $"{path}[{i}].shortcut"); }
                }
            }
            Index(m.Normalize == InputNormalization.ImageNet ? spec.Layers.Skip(1).ToList() : spec.Layers, "model.layers");
        }
        string PathOf(Layer l) => paths.TryGetValue(l, out var p) ? p : l.Type == "normalize" ? "model.normalize" : $"model.name ({m.Name.Yaml()}, layer '{l.Name}')";
        if (input != null)
        {
            // The message starts with the path of the layer and key; where() adds the file and line.
            try { spec.CheckShapes(input, PathOf); }
            catch (ConfigException e)
            {
                var key = e.Message.Split(':')[0];
                throw new ConfigException($"{where(key.StartsWith("model.layers", StringComparison.Ordinal) ? key : "model.name")}: {e.Message}");
            }
        }
        var names = NetworkSpec.Flatten(spec.Body).Select(l => l.Name).ToList();
        foreach (var n in m.Freeze.Where(n => n != "body" && !names.Any(l => l == n || l.StartsWith(n + ".", StringComparison.Ordinal))))
        {
            var guess = ConfigLoader.Closest(n, names) is { } g ? $"did you mean '{g}'? " : "";
            throw new ConfigException($"{where("model.freeze")}: 'model.freeze' names '{n}', which is no layer of the network ({guess}layers: {string.Join(", ", names.Take(12))}{(names.Count > 12 ? ", …" : "")}; or body)");
        }
        if (m.Init != null && !File.Exists(InitPath(m.Init)))
            throw new ConfigException($"{where("model.init")}: 'model.init' is '{m.Init}', which does not exist (a safetensors state dict; a relative path is taken from the current directory)");
    }
}
