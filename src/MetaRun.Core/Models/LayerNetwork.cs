using System.Globalization;
using LibTorch;

namespace MetaRun.Models;

/// <summary>
/// A functional network built from a <see cref="NetworkSpec"/> (model.layers, or a ready
/// specification such as resnet18), used by every algorithm as it uses conv4: weights tagged
/// body, batch norm or head; the head sized by the algorithm; one task [N, ...] or a whole
/// meta-batch [T, N, ...] at once (grouped convolutions, batch norm per task), with the same ops
/// in the same order as the built-in networks, so conv4 written as layers gives the same bits.
/// Weights named in <c>model.init</c> start from that file; frozen layers' weights and batch
/// norm's running statistics are constants: no algorithm sees them, none changes them.
/// </summary>
public sealed class LayerNetwork : ModelBase, IDescribedModel
{
    /// <summary>Where one of a layer's tensors lives: a parameter index (trained) or a constant.</summary>
    private readonly record struct Slot(int Index, Tensor? Constant, long[] Shape);

    private readonly Dictionary<(Layer, string), Slot> slots = new(new LayerKeyComparer());
    private readonly Dictionary<string, Tensor> constants = new();
    private readonly HashSet<Layer> runningStats = new(ReferenceEqualityComparer.Instance);
    private readonly int rank;

    public NetworkSpec Spec { get; }
    public override long Features { get; }
    protected override int ExampleRank => rank;

    /// <summary>Tensors that are not trained (frozen layers' weights, running statistics), by PyTorch name.</summary>
    public IReadOnlyDictionary<string, Tensor> Constants => constants;

    /// <summary>What <c>model.init</c> did, or null without one.</summary>
    public InitReport? Init { get; }

    /// <summary>Weights that train (in <see cref="IModel.Parameters"/>) and constants, in elements.</summary>
    public long TrainedCount => Parameters.Sum(p => p.NumElements);
    public long ConstantCount => constants.Values.Sum(p => p.NumElements);

    /// <param name="init">A state dict by PyTorch name (model.init): its tensors replace the drawn ones; <paramref name="initSource"/> names it in errors.</param>
    /// <param name="frozen">Whether a layer's weights stay fixed (model.freeze).</param>
    public LayerNetwork(NetworkSpec spec, long[] inputShape, int outputs, Generator g, Device device,
        IReadOnlyDictionary<string, Tensor>? init = null, string initSource = "model.init", Func<Layer, bool>? frozen = null)
    {
        Spec = spec;
        rank = inputShape.Length;
        Features = spec.CheckShapes(inputShape, l => $"layer '{l.Name}'")[0];
        var used = new HashSet<string>();
        var loaded = new List<string>();
        var missing = new List<string>();
        Tensor? headWeight = null;
        long fanIn = 1;
        foreach (var (layer, suffix, shape) in spec.Tensors(inputShape, outputs))
        {
            var name = $"{layer.Name}.{suffix}";
            if (!used.Add(name)) throw new ConfigException($"model.layers: two layers are named '{layer.Name}'; names must be unique (they name the weights)");
            var head = ReferenceEquals(layer, spec.Head);
            if (suffix == "weight") fanIn = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
            var value = Draw(layer, suffix, shape, fanIn, g, device);
            if (!head && init != null)
            {
                if (init.TryGetValue(name, out var given))
                {
                    CheckShape(initSource, name, given, shape);
                    using (Torch.NoGrad()) value.CopyFrom(given);
                    loaded.Add(name);
                }
                else missing.Add(name);
            }
            if (head && suffix == "weight") headWeight = value;
            else if (head) AddHead(headWeight!, value);
            else if (frozen?.Invoke(layer) == true) Constant(layer, suffix, name, value);
            else
            {
                Add(name, value, layer is BatchNormLayer ? ParameterRole.BatchNorm : ParameterRole.Body);
                slots[(layer, suffix)] = new Slot(Parameters.Count - 1, null, shape);
            }
            if (layer is BatchNormLayer bn && suffix == "bias")
            {
                var statsGiven = init != null && init.ContainsKey($"{layer.Name}.running_mean");
                if (bn.Stats == BatchNormStats.Running || (bn.Stats == BatchNormStats.Auto && statsGiven))
                {
                    runningStats.Add(layer);
                    foreach (var (stat, fill) in new[] { ("running_mean", 0.0), ("running_var", 1.0) })
                    {
                        var statName = $"{layer.Name}.{stat}";
                        var t = Torch.Full(shape, fill, device: device);
                        if (init != null && init.TryGetValue(statName, out var s))
                        {
                            CheckShape(initSource, statName, s, shape);
                            t.CopyFrom(s);
                            loaded.Add(statName);
                        }
                        else if (init != null) missing.Add(statName);
                        Constant(layer, stat, statName, t);
                    }
                }
            }
        }
        if (init != null)
        {
            var headNames = new[] { $"{spec.Head.Name}.weight", $"{spec.Head.Name}.bias" };
            var known = loaded.ToHashSet();
            Init = new InitReport(initSource, loaded, missing,
                [.. init.Keys.Where(k => !known.Contains(k) && !headNames.Contains(k) && !k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)).Order(StringComparer.Ordinal)],
                [.. headNames.Where(init.ContainsKey)]);
        }
    }

    private static void CheckShape(string source, string name, Tensor given, long[] shape)
    {
        if (!given.Shape.SequenceEqual(shape))
            throw new CheckpointException($"{source}: tensor '{name}' has shape [{NetworkSpec.Show(given.Shape)}], the network expects [{NetworkSpec.Show(shape)}]");
        if (given.DType is not (ScalarType.Float32 or ScalarType.Float64))
            throw new CheckpointException($"{source}: tensor '{name}' has dtype {given.DType}; expected float32");
    }

    private void Constant(Layer layer, string suffix, string name, Tensor value)
    {
        var t = value.DetachFromScope();
        constants[name] = t;
        slots[(layer, suffix)] = new Slot(-1, t, t.Shape);
    }

    /// <summary>A freshly drawn tensor: weights by the layer's init, biases and batch-norm shifts 0, batch-norm scales 1.</summary>
    private static Tensor Draw(Layer layer, string suffix, long[] shape, long fanIn, Generator g, Device device)
    {
        var kind = layer switch { ConvLayer c => c.Init, LinearLayer l => l.Init, _ => WeightInit.XavierUniform };
        if (layer is BatchNormLayer) return suffix == "weight" ? Torch.Ones(shape, device: device) : Torch.Zeros(shape, device: device);
        if (suffix == "bias")
            return kind == WeightInit.FanInUniform ? FanInUniform(shape, fanIn, g, device) : Torch.Zeros(shape, device: device);
        return kind switch
        {
            WeightInit.KaimingNormal => KaimingNormal(shape, g, device),
            WeightInit.FanInUniform => FanInUniform(shape, fanIn, g, device),
            _ => XavierUniform(shape, g, device),
        };
    }

    /// <summary>The tensor a layer uses for <paramref name="suffix"/> ("weight", "bias", "running_mean", "running_var") with weights <paramref name="w"/>, or null if it has none.</summary>
    public Tensor? TensorOf(Layer layer, string suffix, IReadOnlyList<Tensor> w) =>
        slots.TryGetValue((layer, suffix), out var s) ? s.Index >= 0 ? w[s.Index] : s.Constant : null;

    /// <summary>A layer's tensor and its own shape (without the task dimension).</summary>
    private (Tensor? T, long[] Shape) Get(Layer layer, string suffix, IReadOnlyList<Tensor> w) =>
        slots.TryGetValue((layer, suffix), out var s) ? (s.Index >= 0 ? w[s.Index] : s.Constant, s.Shape) : (null, []);

    /// <summary>A weight of own shape <paramref name="own"/> (or with a task dimension in front) as [T, ...own], as <see cref="ModelBase.PerTask"/>.</summary>
    private static Tensor Expanded(Tensor w, long[] own, long tasks) => w.Dim == own.Length + 1 ? w : w.Unsqueeze(0).Expand([tasks, .. own]);

    /// <summary>One task [N, ...] or a meta-batch [T, N, ...] (grouped convolutions, batch norm per task).</summary>
    public override Tensor Embed(Tensor input, IReadOnlyList<Tensor> w)
    {
        var batched = IsMetaBatch(input);
        var tasks = batched ? input.Size(0) : 1;
        var x = rank == 3 ? ChannelsOf(input).X : input;
        return Run(Spec.Body, x, w, tasks, batched);
    }

    // The state between layers: images as [N, T·C, H, W] (a meta-batch's tasks' channels side by
    // side, ChannelsOf), vectors as [N, F] for one task and [T, N, F] for a meta-batch.
    private Tensor Run(IEnumerable<Layer> layers, Tensor x, IReadOnlyList<Tensor> w, long tasks, bool batched)
    {
        foreach (var layer in layers) x = Apply(layer, x, w, tasks, batched);
        return x;
    }

    private Tensor Apply(Layer layer, Tensor x, IReadOnlyList<Tensor> w, long tasks, bool batched)
    {
        var image = x.Dim == 4;
        switch (layer)
        {
            case ConvLayer c:
            {
                var (weight, own) = Get(c, "weight", w);
                var (bias, _) = Get(c, "bias", w);
                if (!(weight!.Dim == own.Length + 1) && tasks == 1)
                    return F.Conv2d(x, weight, bias, stride: c.Stride, padding: c.Padding, groups: c.Groups);
                return F.Conv2d(x, Expanded(weight, own, tasks), bias is null ? null : Expanded(bias, [own[0]], tasks),
                    stride: c.Stride, padding: c.Padding, groups: (int)tasks * c.Groups);
            }
            case BatchNormLayer bn:
            {
                var (gamma, own) = Get(bn, "weight", w);
                var (beta, _) = Get(bn, "bias", w);
                var running = runningStats.Contains(bn);
                Tensor? mean = running ? Get(bn, "running_mean", w).T : null, variance = running ? Get(bn, "running_var", w).T : null;
                Tensor Norm(Tensor h)
                {
                    if (tasks == 1 && gamma!.Dim == 1) return F.BatchNorm(h, mean, variance, gamma, beta, training: !running, eps: bn.Eps);
                    Tensor Flat(Tensor t) => Expanded(t, own, tasks).Reshape(tasks * own[0]);
                    return F.BatchNorm(h, running ? mean!.Repeat([tasks]) : null, running ? variance!.Repeat([tasks]) : null, Flat(gamma!), Flat(beta!), training: !running, eps: bn.Eps);
                }
                if (image || !batched) return Norm(x);
                // [T, N, F] → [N, T·F], each task's features their own channels.
                var (n, f) = (x.Size(1), x.Size(2));
                return Norm(x.Transpose(0, 1).Reshape(n, tasks * f)).Reshape(n, tasks, f).Transpose(0, 1);
            }
            case ActivationLayer a:
                return a.Kind switch
                {
                    ActivationKind.Relu => x.Relu(),
                    ActivationKind.LeakyRelu => F.LeakyRelu(x, a.Slope),
                    ActivationKind.Sigmoid => x.Sigmoid(),
                    _ => x.Tanh(),
                };
            case PoolLayer p:
                return p.Kind == PoolKind.Max ? F.MaxPool2d(x, p.Kernel, p.Stride, p.Padding) : F.AvgPool2d(x, p.Kernel, p.Stride, p.Padding);
            case DropoutLayer d:
                return Dropout(x, d);
            case NormalizeLayer nz:
            {
                var c = nz.Mean.Count;
                using var s = Torch.From(nz.Scale, 1, c, 1, 1);
                using var b = Torch.From(nz.Shift, 1, c, 1, 1);
                var (sd, bd) = (s.To(x.Device), b.To(x.Device));
                return tasks == 1 ? x * sd + bd : x * sd.Repeat([1, tasks, 1, 1]) + bd.Repeat([1, tasks, 1, 1]);
            }
            case FlattenLayer or GlobalAvgPoolLayer:
            {
                var pooled = layer is GlobalAvgPoolLayer ? x.Mean([2, 3]) : x.Flatten(1);
                return batched ? pooled.Reshape(pooled.Size(0), tasks, pooled.Size(1) / tasks).Transpose(0, 1) : pooled;
            }
            case LinearLayer lin:
            {
                var (weight, own) = Get(lin, "weight", w);
                var (bias, _) = Get(lin, "bias", w);
                if (!batched) return F.Linear(x, weight!, bias);
                var wt = weight!.Dim == 3 ? weight : weight.Unsqueeze(0).Expand([tasks, .. own]);
                var y = x.MatMul(wt.Transpose(1, 2));
                return bias is null ? y : y + (bias.Dim == 2 ? bias : bias.Unsqueeze(0).Expand([tasks, own[0]])).Unsqueeze(1);
            }
            case ResidualLayer r:
            {
                var h = Run(r.Body, x, w, tasks, batched);
                return h + Run(r.Shortcut, x, w, tasks, batched);
            }
            default:
                throw new InvalidOperationException($"layer type {layer.Type} has no forward pass");
        }
    }

    /// <summary>The body as the exporter reads it: what <see cref="Embed"/> runs on one task when no gradient is taken (so no dropout).</summary>
    public IReadOnlyList<GraphLayer> Body => Describe(Spec.Body);

    private IReadOnlyList<GraphLayer> Describe(IEnumerable<Layer> layers) => [.. layers.SelectMany(Describe)];

    private IEnumerable<GraphLayer> Describe(Layer layer)
    {
        string? Name(string suffix) => slots.ContainsKey((layer, suffix)) ? $"{layer.Name}.{suffix}" : null;
        switch (layer)
        {
            case ConvLayer c:
                yield return new GraphConv(Name("weight")!, Name("bias"), c.Stride, c.Padding, c.Groups);
                break;
            case BatchNormLayer bn:
                var running = runningStats.Contains(bn);
                yield return new GraphBatchNorm(Name("weight")!, Name("bias")!, bn.Eps, running ? Name("running_mean") : null, running ? Name("running_var") : null);
                break;
            case ActivationLayer a:
                yield return a.Kind switch
                {
                    ActivationKind.Relu => new GraphRelu(),
                    ActivationKind.LeakyRelu => new GraphLeakyRelu(a.Slope),
                    ActivationKind.Sigmoid => new GraphSigmoid(),
                    _ => new GraphTanh(),
                };
                break;
            case PoolLayer p:
                yield return new GraphPool(p.Kind == PoolKind.Avg, p.Kernel, p.Stride, p.Padding);
                break;
            case DropoutLayer:
                break;
            case NormalizeLayer nz:
                yield return new GraphAffine(nz.Scale, nz.Shift);
                break;
            case FlattenLayer:
                yield return new GraphFlatten();
                break;
            case GlobalAvgPoolLayer:
                yield return new GraphGlobalAveragePool();
                break;
            case LinearLayer lin:
                yield return new GraphLinear(Name("weight")!, Name("bias"));
                break;
            case ResidualLayer r:
                yield return new GraphResidual(Describe(r.Body), Describe(r.Shortcut));
                break;
            default:
                throw new InvalidOperationException($"layer type {layer.Type} has no description");
        }
    }

    /// <summary>
    /// Dropout while the pass is differentiated (training and inner-loop steps), none when scored
    /// without gradients. The mask's generator is seeded from the layer's input, so it is the
    /// same whichever worker thread runs the task and in whatever order (same seed, same bits).
    /// </summary>
    private static Tensor Dropout(Tensor x, DropoutLayer d)
    {
        if (!x.RequiresGrad || d.P == 0) return x;
        if (x.Device.Type != DeviceType.Cpu) return F.Dropout(x, d.P, training: true);
        double sum;
        using (Torch.NoGrad())
        using (var s = x.Detach().To(ScalarType.Float64).Sum())
            sum = s.Item();
        // string.GetHashCode differs between processes; FNV-1a of the name does not.
        var h = 14695981039346656037UL;
        foreach (var ch in d.Name) h = (h ^ ch) * 1099511628211UL;
        using var g = new Generator((ulong)BitConverter.DoubleToInt64Bits(sum) ^ h);
        return F.Dropout(x, d.P, training: true, g);
    }

    public new void Dispose()
    {
        base.Dispose();
        foreach (var t in constants.Values) t.Dispose();
    }

    /// <summary>Layers are records (equal by value); slots are per layer object.</summary>
    private sealed class LayerKeyComparer : IEqualityComparer<(Layer, string)>
    {
        public bool Equals((Layer, string) a, (Layer, string) b) => ReferenceEquals(a.Item1, b.Item1) && a.Item2 == b.Item2;
        public int GetHashCode((Layer, string) k) => HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(k.Item1), k.Item2);
    }
}

/// <summary>What loading <c>model.init</c> did: tensors loaded, the network's tensors the file lacks (left as drawn), the file's tensors the network does not have, and the file's head (never loaded: the head is sized by the algorithm).</summary>
public sealed record InitReport(string Source, IReadOnlyList<string> Loaded, IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> SkippedHead)
{
    public override string ToString()
    {
        static string List(IReadOnlyList<string> names) => names.Count <= 6 ? string.Join(", ", names) : $"{string.Join(", ", names.Take(6))}, … ({names.Count - 6} more)";
        var parts = new List<string> { $"{Loaded.Count} tensor(s) loaded" };
        parts.Add(Missing.Count == 0 ? "none missing" : $"{Missing.Count} missing, left as drawn ({List(Missing)})");
        parts.Add(Unexpected.Count == 0 ? "none unexpected" : $"{Unexpected.Count} unexpected, not used ({List(Unexpected)})");
        if (SkippedHead.Count > 0) parts.Add($"head not loaded ({string.Join(", ", SkippedHead)}: the head has one output per way and starts fresh)");
        return $"{Source}: {string.Join("; ", parts)}";
    }
}
