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
    /// Runs the body only (every layer before the head): the features the head reads. Needs only
    /// weights[0 .. HeadStart−1]; ProtoNets and the baseline's new heads work on these.
    /// </summary>
    Tensor Embed(Tensor input, IReadOnlyList<Tensor> weights);

    /// <summary>Width of <see cref="Embed"/>'s output.</summary>
    long Features { get; }

    /// <summary>Index in Parameters where the output layer (the "head") begins; earlier weights form the body.</summary>
    int HeadStart { get; }
}

/// <summary>Weight storage and initialization shared by the models.</summary>
public abstract class ModelBase : IModel
{
    private readonly List<Tensor> parameters = new();
    private readonly List<string> names = new();

    public IReadOnlyList<Tensor> Parameters => parameters;
    public IReadOnlyList<string> ParameterNames => names;
    public abstract int HeadStart { get; }

    public abstract Tensor Embed(Tensor input, IReadOnlyList<Tensor> weights);
    public abstract long Features { get; }

    /// <summary>The body, then the linear head.</summary>
    public Tensor Forward(Tensor input, IReadOnlyList<Tensor> w) => F.Linear(Embed(input, w), w[HeadStart], w[HeadStart + 1]);

    protected void Add(string name, Tensor value)
    {
        names.Add(name);
        parameters.Add(value.DetachFromScope().RequiresGrad_());
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
