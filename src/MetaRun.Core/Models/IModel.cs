using LibTorch;

namespace MetaRun.Models;

/// <summary>
/// A functional network: <see cref="Forward"/> takes the weights as an argument, so an algorithm
/// can run it with adapted weights (MAML's fast weights) without touching the model's own.
/// It also runs a whole meta-batch at once: inputs with a leading task dimension [T, N, ...]
/// and weights that are either shared (the model's shapes) or per task ([T, ...shape]), as
/// <see cref="WeightsFor"/> makes them. Tasks never mix: each task's outputs depend only on its
/// inputs and its weights, so the gradient of a sum of per-task losses is each task's own.
/// </summary>
public interface IModel : IDisposable
{
    /// <summary>The model's own weights (leaf tensors that require grad), in a fixed order.</summary>
    IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>Names of <see cref="Parameters"/>, same order, as saved in checkpoints.</summary>
    IReadOnlyList<string> ParameterNames { get; }

    /// <summary>Runs a batch of inputs through the network with the given weights (same order as Parameters).</summary>
    Tensor Forward(Tensor input, IReadOnlyList<Tensor> weights);

    /// <summary>The head applied to features (from <see cref="Embed"/>).</summary>
    Tensor Classify(Tensor features, IReadOnlyList<Tensor> weights);

    /// <summary>
    /// The weights to start adapting from for <paramref name="input"/>: the model's own for one
    /// task, or for a meta-batch [T, N, ...] views of them with a task dimension in front (so
    /// each task's gradient is its own).
    /// </summary>
    IReadOnlyList<Tensor> WeightsFor(Tensor input);

    /// <summary>Whether <paramref name="input"/> holds a meta-batch (a leading task dimension) rather than one task's examples.</summary>
    bool IsMetaBatch(Tensor input);

    /// <summary>
    /// Runs the body only (every layer before the head): the features the head reads. Reads only
    /// the non-head weights; ProtoNets and the baseline's new heads work on these.
    /// </summary>
    Tensor Embed(Tensor input, IReadOnlyList<Tensor> weights);

    /// <summary>Width of <see cref="Embed"/>'s output.</summary>
    long Features { get; }

    /// <summary>What each of <see cref="Parameters"/> is, same order: algorithms pick weights by role, never by position or name.</summary>
    IReadOnlyList<ParameterRole> Roles { get; }

    /// <summary>The output layer's weight and bias within <paramref name="weights"/> (the model's own or fast weights).</summary>
    (Tensor Weight, Tensor Bias) Head(IReadOnlyList<Tensor> weights);
}

/// <summary>
/// The part a weight plays. Body weights (batch norm included) compute the features; the head
/// maps them to one output per class. ANIL adapts only the head, ProtoNets never use it, and
/// MAML++ gives batch norm per-step copies.
/// </summary>
public enum ParameterRole { Body, BatchNorm, HeadWeight, HeadBias }

public static class ModelRoles
{
    /// <summary>Indices of the weights with one of <paramref name="roles"/>, in parameter order.</summary>
    public static int[] IndicesOf(this IModel model, params ParameterRole[] roles) =>
        model.Roles.Select((r, i) => (r, i)).Where(p => roles.Contains(p.r)).Select(p => p.i).ToArray();

    public static bool IsHead(this ParameterRole role) => role is ParameterRole.HeadWeight or ParameterRole.HeadBias;
}

/// <summary>Weight storage and initialization shared by the models.</summary>
public abstract class ModelBase : IModel
{
    private readonly List<Tensor> parameters = new();
    private readonly List<string> names = new();
    private readonly List<ParameterRole> roles = new();

    public IReadOnlyList<Tensor> Parameters => parameters;
    public IReadOnlyList<string> ParameterNames => names;
    public IReadOnlyList<ParameterRole> Roles => roles;

    public abstract Tensor Embed(Tensor input, IReadOnlyList<Tensor> weights);
    public abstract long Features { get; }

    public (Tensor Weight, Tensor Bias) Head(IReadOnlyList<Tensor> w) => (w[roles.IndexOf(ParameterRole.HeadWeight)], w[roles.IndexOf(ParameterRole.HeadBias)]);

    /// <summary>The body, then the linear head.</summary>
    public Tensor Forward(Tensor input, IReadOnlyList<Tensor> w) => Classify(Embed(input, w), w);

    public Tensor Classify(Tensor features, IReadOnlyList<Tensor> w)
    {
        var (weight, bias) = Head(w);
        return features.Dim == 3 ? Linear(features, weight, bias, features.Size(0)) : F.Linear(features, weight, bias);
    }

    /// <summary>The rank of one example's input (3 for [C, H, W] images, 1 for vectors).</summary>
    protected abstract int ExampleRank { get; }

    public bool IsMetaBatch(Tensor input) => input.Dim == ExampleRank + 2;

    public IReadOnlyList<Tensor> WeightsFor(Tensor input) =>
        IsMetaBatch(input) ? parameters.Select(p => PerTask(p, p, input.Size(0))).ToArray() : parameters;

    /// <summary>Weight <paramref name="w"/> (shaped like <paramref name="own"/>, or with a task dimension in front) as [T, ...shape].</summary>
    protected static Tensor PerTask(Tensor w, Tensor own, long tasks) =>
        w.Dim == own.Dim + 1 ? w : w.Unsqueeze(0).Expand([tasks, .. own.Shape]);

    /// <summary>
    /// Images as the convolutional layers below take them: one task's [N, C, H, W] as it is, a
    /// meta-batch's [T, N, C, H, W] as [N, T·C, H, W] (the tasks' channels side by side); and T.
    /// </summary>
    protected (Tensor X, long Tasks) ChannelsOf(Tensor input) => IsMetaBatch(input)
        ? (input.Transpose(0, 1).Reshape(input.Size(1), input.Size(0) * input.Size(2), input.Size(3), input.Size(4)), input.Size(0))
        : (input, 1);

    /// <summary>Pooled features [N, T·F] back to the per-task [T, N, F] of a meta-batch (as they are for one task).</summary>
    protected Tensor FeaturesOf(Tensor pooled, Tensor input, long tasks) =>
        IsMetaBatch(input) ? pooled.Reshape(pooled.Size(0), tasks, Features).Transpose(0, 1) : pooled;

    /// <summary>
    /// Convolution with weight <paramref name="weight"/> (and bias, if any) of <paramref name="w"/>.
    /// For a meta-batch (<see cref="ChannelsOf"/>) it is a grouped convolution, one group per task
    /// with that task's kernel (one ordinary convolution while the tasks share θ); for one task, the plain convolution.
    /// </summary>
    protected Tensor Conv(Tensor x, IReadOnlyList<Tensor> w, int weight, int? bias, long tasks, int stride, int padding)
    {
        var own = Parameters[weight];
        if (tasks == 1 && w[weight].Dim == own.Dim) return F.Conv2d(x, w[weight], bias is { } b ? w[b] : null, stride: stride, padding: padding);
        return F.Conv2d(x, PerTask(w[weight], own, tasks), bias is { } c ? PerTask(w[c], Parameters[c], tasks) : null, stride: stride, padding: padding, groups: (int)tasks);
    }

    /// <summary>
    /// Batch norm with the current batch's statistics; over a meta-batch's T·F channels it is
    /// batch norm per task, since its statistics are per channel (over N, H and W). Inside a
    /// <see cref="BatchNormRunningStats"/> pass, with its running averages instead.
    /// </summary>
    protected Tensor BatchNorm(Tensor x, IReadOnlyList<Tensor> w, int gamma, int beta, long tasks)
    {
        var (g, b) = tasks == 1 && w[gamma].Dim == 1 ? (w[gamma], w[beta]) : (Flat(w, gamma, tasks), Flat(w, beta, tasks));
        return BatchNormRunningStats.Normalize(x, g, b) ?? F.BatchNorm(x, null, null, g, b, training: true);
    }

    /// <summary>A per-channel weight of every task as one [T·F] vector.</summary>
    private Tensor Flat(IReadOnlyList<Tensor> w, int i, long tasks) => PerTask(w[i], Parameters[i], tasks).Reshape(tasks * Parameters[i].Size(0));

    /// <summary>Per-task linear layers on [T, N, in]: x·Wᵀ + b with W [T, out, in], b [T, out] (shared ones expanded).</summary>
    protected static Tensor Linear(Tensor x, Tensor weight, Tensor bias, long tasks)
    {
        var w = weight.Dim == 3 ? weight : weight.Unsqueeze(0).Expand([tasks, .. weight.Shape]);
        var b = bias.Dim == 2 ? bias : bias.Unsqueeze(0).Expand([tasks, .. bias.Shape]);
        return x.MatMul(w.Transpose(1, 2)) + b.Unsqueeze(1);
    }

    protected void Add(string name, Tensor value, ParameterRole role = ParameterRole.Body)
    {
        names.Add(name);
        roles.Add(role);
        parameters.Add(value.DetachFromScope().RequiresGrad_());
    }

    /// <summary>The linear output layer, added last.</summary>
    protected void AddHead(Tensor weight, Tensor bias)
    {
        Add("head.weight", weight, ParameterRole.HeadWeight);
        Add("head.bias", bias, ParameterRole.HeadBias);
    }

    /// <summary>Glorot/Xavier uniform: U(−b, b) with b = √(6 / (fan_in + fan_out)), as the MAML reference code.</summary>
    protected static Tensor XavierUniform(long[] shape, Generator g, Device device)
    {
        long receptive = 1;
        for (var i = 2; i < shape.Length; i++) receptive *= shape[i];
        var fanIn = shape[1] * receptive;
        var fanOut = shape[0] * receptive;
        var bound = Math.Sqrt(6.0 / (fanIn + fanOut));
        return Uniform(shape, bound, g, device);
    }

    /// <summary>U(−b, b) with b = 1/√fan_in: PyTorch's default for linear layers.</summary>
    protected static Tensor FanInUniform(long[] shape, long fanIn, Generator g, Device device) => Uniform(shape, 1.0 / Math.Sqrt(fanIn), g, device);

    /// <summary>He/Kaiming normal, N(0, 2 / fan_out), as ResNet-12 implementations initialize their convolutions.</summary>
    protected static Tensor KaimingNormal(long[] shape, Generator g, Device device)
    {
        using var scope = Torch.NewScope();
        long receptive = 1;
        for (var i = 2; i < shape.Length; i++) receptive *= shape[i];
        var n = Torch.Randn(shape, ScalarType.Float32, Device.Cpu, g);
        return (n * Math.Sqrt(2.0 / (shape[0] * receptive))).To(device).MoveToOuterScope();
    }

    private static Tensor Uniform(long[] shape, double bound, Generator g, Device device)
    {
        using var scope = Torch.NewScope();
        var u = Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g);
        return (u * (2 * bound) - bound).To(device).MoveToOuterScope();
    }

    public void Dispose()
    {
        foreach (var p in parameters) p.Dispose();
    }
}
