namespace MetaRun.Models;

/// <summary>
/// A network's body as data: the layers its <see cref="IModel.Embed"/> runs, in order, each
/// naming the weights it reads by their parameter names. What leaves MetaRun (ONNX export)
/// is written from this, never from a model's code, so a network only has to describe itself.
/// </summary>
public abstract record GraphLayer;

/// <summary>2-D convolution, square kernel from the weight's shape [out, in / groups, k, k].</summary>
public sealed record GraphConv(string Weight, string? Bias, int Stride, int Padding, int Groups = 1) : GraphLayer;

/// <summary>
/// Batch norm over [N, C, H, W] or [N, C], then γ·x̂ + β: with the current batch's statistics
/// (biased variance), or, where <paramref name="RunningMean"/> is given, with fixed running statistics (PyTorch's eval mode).
/// </summary>
public sealed record GraphBatchNorm(string Weight, string Bias, double Eps = 1e-5, string? RunningMean = null, string? RunningVar = null) : GraphLayer;

public sealed record GraphRelu : GraphLayer;

public sealed record GraphLeakyRelu(double Slope) : GraphLayer;

public sealed record GraphSigmoid : GraphLayer;

public sealed record GraphTanh : GraphLayer;

/// <summary>Max- or average pooling with a square window, rounding down; average pooling counts the zero padding in its divisor (PyTorch's default).</summary>
public sealed record GraphPool(bool Average, int Kernel, int Stride, int Padding) : GraphLayer
{
    public static GraphPool Max(int size) => new(false, size, size, 0);
}

/// <summary>Per-channel x · scale + shift with fixed values (an input normalisation, (x − mean) / std).</summary>
public sealed record GraphAffine(IReadOnlyList<float> Scale, IReadOnlyList<float> Shift) : GraphLayer;

/// <summary>The mean over the spatial dimensions: [N, C, H, W] → [N, C].</summary>
public sealed record GraphGlobalAveragePool : GraphLayer;

/// <summary>[N, ...] → [N, product of the rest], in row-major order.</summary>
public sealed record GraphFlatten : GraphLayer;

/// <summary>x·Wᵀ + b with W [out, in]; no b where <paramref name="Bias"/> is null.</summary>
public sealed record GraphLinear(string Weight, string? Bias) : GraphLayer;

/// <summary>Main(x) + Shortcut(x); an empty shortcut is the identity.</summary>
public sealed record GraphResidual(IReadOnlyList<GraphLayer> Main, IReadOnlyList<GraphLayer> Shortcut) : GraphLayer;

/// <summary>A model whose body is a list of <see cref="GraphLayer"/>s (the head is always the linear layer of its head weights).</summary>
public interface IDescribedModel : IModel
{
    /// <summary>The layers of <see cref="IModel.Embed"/> for one task's batch, in order.</summary>
    IReadOnlyList<GraphLayer> Body { get; }
}
