using LibTorch;

namespace MetaRun.Models;

/// <summary>
/// A functional network: <see cref="Forward"/> takes the weights as an argument, so an algorithm
/// can run it with adapted weights (MAML's fast weights) without touching the model's own.
/// </summary>
public interface IModel : IDisposable
{
    /// <summary>The model's own weights (leaf tensors that require grad), in a fixed order.</summary>
    IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>Names of <see cref="Parameters"/>, same order, as saved in checkpoints.</summary>
    IReadOnlyList<string> ParameterNames { get; }

    /// <summary>Runs a batch of inputs through the network with the given weights (same order as Parameters).</summary>
    Tensor Forward(Tensor input, IReadOnlyList<Tensor> weights);

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
    public Tensor Forward(Tensor input, IReadOnlyList<Tensor> w)
    {
        var (weight, bias) = Head(w);
        return F.Linear(Embed(input, w), weight, bias);
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
