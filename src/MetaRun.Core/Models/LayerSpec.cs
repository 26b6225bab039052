using System.Globalization;

namespace MetaRun.Models;

/// <summary>
/// A network as data: an immutable list of layer records that <see cref="LayerNetwork"/> runs and
/// anything else (an exporter, a printer) can walk. Each layer's <see cref="Layer.Name"/> is its
/// full PyTorch module path ("layer1.0.conv1"); its tensors are that name plus ".weight", ".bias",
/// ".running_mean", ".running_var", so a torchvision state dict maps onto it by name.
/// The last layer is the head (<see cref="NetworkSpec.Head"/>): a linear layer whose width the
/// algorithm sets (one output per way or per training class).
/// </summary>
public abstract record Layer(string Name)
{
    /// <summary>The YAML type name ("conv", "batchnorm", ...).</summary>
    public abstract string Type { get; }
}

public enum WeightInit
{
    /// <summary>Glorot/Xavier uniform, as the MAML reference code (and conv4) initializes.</summary>
    XavierUniform,
    /// <summary>He/Kaiming normal with fan-out, as torchvision's ResNets and ResNet-12 initialize their convolutions.</summary>
    KaimingNormal,
    /// <summary>U(−1/√fan_in, 1/√fan_in), PyTorch's default for linear layers (torchvision's fc).</summary>
    FanInUniform,
}

/// <summary>2-D convolution, weight [Out, In/Groups, Kernel, Kernel].</summary>
public sealed record ConvLayer(string Name, int Out, int Kernel, int Stride, int Padding, int Groups, bool Bias, WeightInit Init) : Layer(Name)
{
    public override string Type => "conv";
}

/// <summary>Where batch norm takes its mean and variance from.</summary>
public enum BatchNormStats
{
    /// <summary>Running statistics when <c>model.init</c> holds this layer's, else the batch's.</summary>
    Auto,
    /// <summary>The current batch's (per task), as conv4 and the MAML reference code.</summary>
    Batch,
    /// <summary>Fixed running statistics (from <c>model.init</c>; mean 0 and variance 1 without it), PyTorch's eval mode.</summary>
    Running,
}

/// <summary>Batch normalization over channels (images) or features (vectors), with a learned scale and shift.</summary>
public sealed record BatchNormLayer(string Name, BatchNormStats Stats, double Eps) : Layer(Name)
{
    public override string Type => "batchnorm";
}

public enum ActivationKind { Relu, LeakyRelu, Sigmoid, Tanh }

public sealed record ActivationLayer(string Name, ActivationKind Kind, double Slope) : Layer(Name)
{
    public override string Type => Kind switch { ActivationKind.LeakyRelu => "leaky_relu", _ => Kind.ToString().ToLowerInvariant() };
}

public enum PoolKind { Max, Avg }

public sealed record PoolLayer(string Name, PoolKind Kind, int Kernel, int Stride, int Padding) : Layer(Name)
{
    public override string Type => Kind == PoolKind.Max ? "maxpool" : "avgpool";
}

/// <summary>Inverted dropout, on while the pass is differentiated (training and inner-loop steps), off when scored without gradients.</summary>
public sealed record DropoutLayer(string Name, double P) : Layer(Name)
{
    public override string Type => "dropout";
}

/// <summary>[C, H, W] to [C·H·W].</summary>
public sealed record FlattenLayer(string Name) : Layer(Name)
{
    public override string Type => "flatten";
}

/// <summary>[C, H, W] to [C], the mean over space (torchvision's avgpool + flatten).</summary>
public sealed record GlobalAvgPoolLayer(string Name) : Layer(Name)
{
    public override string Type => "global_avg_pool";
}

/// <summary>Fully connected layer; <see cref="Out"/> 0 only for the head, whose width the algorithm sets.</summary>
public sealed record LinearLayer(string Name, int Out, bool Bias, WeightInit Init) : Layer(Name)
{
    public override string Type => "linear";
}

/// <summary>Per-channel (x − mean) / std with fixed values: the input normalization a pretrained body expects.</summary>
public sealed record NormalizeLayer(string Name, IReadOnlyList<double> Mean, IReadOnlyList<double> Std) : Layer(Name)
{
    public override string Type => "normalize";

    /// <summary>The normalisation as x · Scale + Shift per channel, in float32, as the network and its ONNX export compute it.</summary>
    public float[] Scale => [.. Std.Select(s => (float)(1 / s))];
    public float[] Shift => [.. Mean.Select((m, i) => (float)(-m / Std[i]))];
}

/// <summary>body(x) + shortcut(x); an empty shortcut is the identity. An activation after the sum is the next layer.</summary>
public sealed record ResidualLayer(string Name, IReadOnlyList<Layer> Body, IReadOnlyList<Layer> Shortcut) : Layer(Name)
{
    public override string Type => "residual";
}

/// <summary>A whole network: the layers in order, the last one the head.</summary>
public sealed record NetworkSpec(IReadOnlyList<Layer> Layers)
{
    public LinearLayer Head => (LinearLayer)Layers[^1];

    /// <summary>Every layer before the head.</summary>
    public IReadOnlyList<Layer> Body => Layers.Take(Layers.Count - 1).ToArray();

    /// <summary>The layers in execution order, residual groups opened (their body, then their shortcut).</summary>
    public static IEnumerable<Layer> Flatten(IEnumerable<Layer> layers) =>
        layers.SelectMany(l => l is ResidualLayer r ? Flatten(r.Body).Concat(Flatten(r.Shortcut)).Prepend(l) : [l]);

    /// <summary>
    /// The output shape of every layer (one example, no batch dimension), for <paramref name="input"/>;
    /// a layer that cannot take its input is a <see cref="ConfigException"/> naming the layer
    /// (<paramref name="pathOf"/>: its config path, like model.layers[3]) and the shapes.
    /// Returns the head's input shape.
    /// </summary>
    public long[] CheckShapes(long[] input, Func<Layer, string> pathOf)
    {
        if (Layers.Count == 0 || Layers[^1] is not LinearLayer { Out: 0 })
            throw new ConfigException($"{pathOf(Layers.Count == 0 ? new FlattenLayer("") : Layers[^1])}: the last layer must be the head, a linear layer without 'out' (its width is one output per way, set by the algorithm)");
        // Algorithms read the head as a weight and a bias.
        if (!Head.Bias) throw new ConfigException($"{pathOf(Head)}.bias: the head needs its bias; remove 'bias: false' from the last layer");
        var shape = Through(Body, input, pathOf);
        if (shape.Length != 1)
            throw new ConfigException($"{pathOf(Layers[^1])}: the head (linear) needs feature vectors, but the layer before it gives [{Show(shape)}]; add flatten or global_avg_pool");
        return shape;
    }

    private static long[] Through(IEnumerable<Layer> layers, long[] shape, Func<Layer, string> pathOf)
    {
        foreach (var l in layers) shape = OutputShape(l, shape, pathOf);
        return shape;
    }

    internal static string Show(long[] shape) => string.Join(", ", shape);

    private static long[] OutputShape(Layer layer, long[] x, Func<Layer, string> pathOf)
    {
        string at(string key) => $"{pathOf(layer)}{(key.Length > 0 ? "." + key : "")}";
        void NeedImages(string what)
        {
            if (x.Length != 3) throw new ConfigException($"{at("")}: {what} needs images [C, H, W], but its input is [{Show(x)}]");
        }
        long Spatial(long side, int kernel, int stride, int padding, string key) =>
            (side + 2 * padding - kernel) / stride + 1 is var o && o >= 1 ? o
                : throw new ConfigException($"{at(key)}: kernel {kernel} (stride {stride}, padding {padding}) does not fit the input [{Show(x)}]: the output would be empty");
        switch (layer)
        {
            case ConvLayer c:
                NeedImages("conv");
                if (x[0] % c.Groups != 0 || c.Out % c.Groups != 0)
                    throw new ConfigException($"{at("groups")}: groups {c.Groups} must divide the input channels ({x[0]}, input [{Show(x)}]) and out ({c.Out})");
                return [c.Out, Spatial(x[1], c.Kernel, c.Stride, c.Padding, "kernel"), Spatial(x[2], c.Kernel, c.Stride, c.Padding, "kernel")];
            case PoolLayer p:
                NeedImages(p.Type);
                if (p.Padding * 2 > p.Kernel) throw new ConfigException($"{at("padding")}: padding {p.Padding} is more than half the kernel {p.Kernel}");
                return [x[0], Spatial(x[1], p.Kernel, p.Stride, p.Padding, "kernel"), Spatial(x[2], p.Kernel, p.Stride, p.Padding, "kernel")];
            case NormalizeLayer n:
                NeedImages("normalize");
                if (n.Mean.Count != x[0] || n.Std.Count != x[0])
                    throw new ConfigException($"{at("mean")}: normalize has {n.Mean.Count} means and {n.Std.Count} standard deviations, but the input [{Show(x)}] has {x[0]} channels");
                return x;
            case FlattenLayer:
                NeedImages("flatten");
                return [x[0] * x[1] * x[2]];
            case GlobalAvgPoolLayer:
                NeedImages("global_avg_pool");
                return [x[0]];
            case LinearLayer lin:
                if (x.Length != 1) throw new ConfigException($"{at("")}: linear needs feature vectors, but its input is [{Show(x)}]; add flatten or global_avg_pool before it");
                if (lin.Out == 0) throw new ConfigException($"{at("out")}: only the last layer (the head) may leave 'out' out");
                return [lin.Out];
            case ResidualLayer r:
            {
                var body = Through(r.Body, x, pathOf);
                var shortcut = Through(r.Shortcut, x, pathOf);
                if (!body.SequenceEqual(shortcut))
                    throw new ConfigException($"{at("shortcut")}: the residual's layers give [{Show(body)}] but its shortcut gives [{Show(shortcut)}] for the input [{Show(x)}]; they must match to be added");
                return body;
            }
            default: // batch norm, activations, dropout keep the shape
                return x;
        }
    }

    /// <summary>Weights and running statistics of each layer, as the network stores them (name → shape), in order.</summary>
    public IEnumerable<(Layer Layer, string Tensor, long[] Shape)> Tensors(long[] input, int outputs)
    {
        var list = new List<(Layer, string, long[])>();
        Walk(Layers, input);
        return list;

        long[] Walk(IEnumerable<Layer> layers, long[] x)
        {
            foreach (var l in layers)
            {
                switch (l)
                {
                    case ConvLayer c:
                        list.Add((c, "weight", [c.Out, x[0] / c.Groups, c.Kernel, c.Kernel]));
                        if (c.Bias) list.Add((c, "bias", [c.Out]));
                        break;
                    case BatchNormLayer:
                        list.Add((l, "weight", [x[0]]));
                        list.Add((l, "bias", [x[0]]));
                        break;
                    case LinearLayer lin:
                        var o = lin.Out == 0 ? outputs : lin.Out;
                        list.Add((lin, "weight", [o, x[0]]));
                        if (lin.Bias) list.Add((lin, "bias", [o]));
                        x = [o];
                        continue;
                    case ResidualLayer r:
                        var y = Walk(r.Body, x);
                        Walk(r.Shortcut, x);
                        x = y;
                        continue;
                }
                x = OutputShape(l, x, _ => l.Name);
            }
            return x;
        }
    }

    /// <summary>Parsed from the config's raw model.layers (see <see cref="LayerYaml"/>).</summary>
    public static NetworkSpec Parse(IReadOnlyList<object> raw, string path, Func<string, string> where) =>
        new(LayerYaml.ParseList(raw, path, "", where));
}

/// <summary>
/// model.layers as written in YAML: a list whose entries are a type name ("relu") or a mapping
/// with a 'type' and that type's keys. Unknown types and keys are config errors with the
/// config path (model.layers[3].kernel) and a did-you-mean.
/// </summary>
internal static class LayerYaml
{
    private static readonly Dictionary<string, string[]> KeysOf = new()
    {
        ["conv"] = ["out", "kernel", "stride", "padding", "groups", "bias", "init"],
        ["batchnorm"] = ["stats", "eps"],
        ["relu"] = [], ["sigmoid"] = [], ["tanh"] = [], ["leaky_relu"] = ["slope"],
        ["maxpool"] = ["kernel", "stride", "padding"], ["avgpool"] = ["kernel", "stride", "padding"],
        ["dropout"] = ["p"], ["flatten"] = [], ["global_avg_pool"] = [],
        ["linear"] = ["out", "bias", "init"],
        ["normalize"] = ["mean", "std"],
        ["residual"] = ["layers", "shortcut"],
    };

    internal static Layer[] ParseList(IReadOnlyList<object> raw, string path, string prefix, Func<string, string> where, string defaultPrefix = "")
    {
        var layers = new Layer[raw.Count];
        var names = new HashSet<string>();
        for (var i = 0; i < raw.Count; i++)
        {
            layers[i] = ParseOne(raw[i], $"{path}[{i}]", prefix, defaultPrefix + i.ToString(CultureInfo.InvariantCulture), where);
            if (!(layers[i] is ActivationLayer or DropoutLayer or FlattenLayer or GlobalAvgPoolLayer or PoolLayer) && !names.Add(layers[i].Name))
                throw new ConfigException($"{where($"{path}[{i}].name")}: '{path}[{i}].name' is '{layers[i].Name}', which an earlier layer already uses; names must be unique (they name the weights)");
        }
        return layers;
    }

    private static Layer ParseOne(object raw, string at, string prefix, string defaultName, Func<string, string> where)
    {
        var map = raw switch
        {
            string s => new Dictionary<string, object> { ["type"] = s },
            Dictionary<string, object> d => d,
            _ => throw new ConfigException($"{where(at)}: '{at}' must be a layer type (like relu) or a mapping with a 'type' (like {{type: conv, out: 64, kernel: 3}})"),
        };
        if (!map.TryGetValue("type", out var typeObj) || typeObj is not string type)
            throw new ConfigException($"{where(at)}: '{at}' has no 'type'; expected one of: {string.Join(", ", KeysOf.Keys)}");
        if (!KeysOf.TryGetValue(type, out var allowed))
        {
            var guess = Config.ConfigLoader.Closest(type, KeysOf.Keys) is { } g ? $"did you mean '{g}'? " : "";
            throw new ConfigException($"{where(at + ".type")}: '{at}.type' is '{type}' ({guess}known types: {string.Join(", ", KeysOf.Keys)})");
        }
        foreach (var key in map.Keys.Where(k => k is not ("type" or "name") && !allowed.Contains(k)))
        {
            var guess = Config.ConfigLoader.Closest(key, allowed) is { } g ? $"did you mean '{g}'? " : "";
            throw new ConfigException($"{where($"{at}.{key}")}: unknown key '{at}.{key}' for a {type} layer ({guess}its keys: {string.Join(", ", allowed.Prepend("name"))})");
        }
        var own = map.TryGetValue("name", out var n) ? n as string ?? throw new ConfigException($"{where(at + ".name")}: '{at}.name' must be a single value") : defaultName;
        if (own.Length == 0 || !own.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.') || own.StartsWith('.') || own.EndsWith('.') || own.Contains(".."))
            throw new ConfigException($"{where(at + ".name")}: '{at}.name' is '{own}'; a name is letters, digits, '_' and inner dots (like layer1.0.conv1)");
        var name = prefix + own;

        int Int(string key, int? fallback, int min = 1)
        {
            if (!map.TryGetValue(key, out var v)) return fallback ?? throw new ConfigException($"{where(at)}: '{at}' ({type}) needs '{key}'");
            if (v is string s && int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) && i >= min && i <= 1 << 20) return i;
            throw new ConfigException($"{where($"{at}.{key}")}: '{at}.{key}' must be an integer from {min} to {1 << 20}, not '{Text(v)}'");
        }
        double Num(string key, double fallback, double min, double max)
        {
            if (!map.TryGetValue(key, out var v)) return fallback;
            if (v is string s && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) && d >= min && d <= max) return d;
            throw new ConfigException($"{where($"{at}.{key}")}: '{at}.{key}' must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}, not '{Text(v)}'");
        }
        bool Bool(string key, bool fallback)
        {
            if (!map.TryGetValue(key, out var v)) return fallback;
            return v is string s && bool.TryParse(s, out var b) ? b : throw new ConfigException($"{where($"{at}.{key}")}: '{at}.{key}' must be true or false, not '{Text(v)}'");
        }
        T Enum<T>(string key, T fallback, params (string Yaml, T Value)[] options)
        {
            if (!map.TryGetValue(key, out var v)) return fallback;
            foreach (var (yaml, value) in options) if (v is string s && s == yaml) return value;
            throw new ConfigException($"{where($"{at}.{key}")}: '{at}.{key}' is '{Text(v)}'; expected one of: {string.Join(", ", options.Select(o => o.Yaml))}");
        }
        List<double> Numbers(string key)
        {
            if (map.TryGetValue(key, out var v) && v is List<object> list && list.Count > 0)
                return [.. list.Select(e => e is string s && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d
                    : throw new ConfigException($"{where($"{at}.{key}")}: '{at}.{key}' must be a list of numbers, like [0.485, 0.456, 0.406]"))];
            throw new ConfigException($"{where(at + (map.ContainsKey(key) ? "." + key : ""))}: '{at}' (normalize) needs '{key}', a list of numbers (one per channel)");
        }
        List<object> Layers(string key, bool required)
        {
            if (!map.TryGetValue(key, out var v)) return required ? throw new ConfigException($"{where(at)}: '{at}' (residual) needs '{key}', a list of layers") : [];
            return v as List<object> ?? throw new ConfigException($"{where($"{at}.{key}")}: '{at}.{key}' must be a list of layers");
        }
        WeightInit Init(WeightInit fallback) => Enum("init", fallback, ("xavier_uniform", WeightInit.XavierUniform), ("kaiming_normal", WeightInit.KaimingNormal), ("fan_in_uniform", WeightInit.FanInUniform));

        switch (type)
        {
            case "conv":
                return new ConvLayer(name, Int("out", null), Int("kernel", null), Int("stride", 1), Int("padding", 0, min: 0), Int("groups", 1), Bool("bias", true), Init(WeightInit.XavierUniform));
            case "batchnorm":
                return new BatchNormLayer(name, Enum("stats", BatchNormStats.Auto, ("auto", BatchNormStats.Auto), ("batch", BatchNormStats.Batch), ("running", BatchNormStats.Running)), Num("eps", 1e-5, 1e-12, 1));
            case "relu": return new ActivationLayer(name, ActivationKind.Relu, 0);
            case "sigmoid": return new ActivationLayer(name, ActivationKind.Sigmoid, 0);
            case "tanh": return new ActivationLayer(name, ActivationKind.Tanh, 0);
            case "leaky_relu": return new ActivationLayer(name, ActivationKind.LeakyRelu, Num("slope", 0.01, 0, 1));
            case "maxpool" or "avgpool":
                var kernel = Int("kernel", null);
                return new PoolLayer(name, type == "maxpool" ? PoolKind.Max : PoolKind.Avg, kernel, Int("stride", kernel), Int("padding", 0, min: 0));
            case "dropout": return new DropoutLayer(name, Num("p", 0.5, 0, 0.99));
            case "flatten": return new FlattenLayer(name);
            case "global_avg_pool": return new GlobalAvgPoolLayer(name);
            case "linear":
                return new LinearLayer(name, map.ContainsKey("out") ? Int("out", null) : 0, Bool("bias", true), Init(WeightInit.XavierUniform));
            case "normalize":
                var mean = Numbers("mean");
                var std = Numbers("std");
                if (std.Any(s => s <= 0)) throw new ConfigException($"{where(at + ".std")}: '{at}.std' must be positive");
                return new NormalizeLayer(name, mean, std);
            default: // residual
                return new ResidualLayer(name, ParseList(Layers("layers", true), at + ".layers", name + ".", where),
                    ParseList(Layers("shortcut", false), at + ".shortcut", name + ".", where, defaultPrefix: "shortcut."));
        }
    }

    private static string Text(object v) => v is string s ? s : v is List<object> ? "a list" : "a mapping";
}
