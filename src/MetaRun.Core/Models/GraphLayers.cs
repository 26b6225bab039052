namespace MetaRun.Models;

/// <summary>
/// A network's body as data: the layers its <see cref="IModel.Embed"/> runs, in order, each
/// naming the weights it reads by their parameter names. What leaves MetaRun (ONNX export)
/// is written from this, never from a model's code, so a network only has to describe itself.
/// </summary>
public abstract record GraphLayer;

/// <summary>2-D convolution, square kernel from the weight's shape [out, in, k, k].</summary>
public sealed record GraphConv(string Weight, string? Bias, int Stride, int Padding) : GraphLayer;

/// <summary>Batch norm over [N, C, H, W] with the current batch's statistics (biased variance), then γ·x̂ + β.</summary>
public sealed record GraphBatchNorm(string Weight, string Bias, double Eps = 1e-5) : GraphLayer;

public sealed record GraphRelu : GraphLayer;

public sealed record GraphLeakyRelu(double Slope) : GraphLayer;

/// <summary>Max-pooling with a square window and the same stride, no padding, rounding down.</summary>
public sealed record GraphMaxPool(int Size) : GraphLayer;

/// <summary>The mean over the spatial dimensions: [N, C, H, W] → [N, C].</summary>
public sealed record GraphGlobalAveragePool : GraphLayer;

/// <summary>[N, ...] → [N, product of the rest], in row-major order.</summary>
public sealed record GraphFlatten : GraphLayer;

/// <summary>x·Wᵀ + b with W [out, in].</summary>
public sealed record GraphLinear(string Weight, string Bias) : GraphLayer;

/// <summary>Main(x) + Shortcut(x); an empty shortcut is the identity.</summary>
public sealed record GraphResidual(IReadOnlyList<GraphLayer> Main, IReadOnlyList<GraphLayer> Shortcut) : GraphLayer;

/// <summary>A model whose body is a list of <see cref="GraphLayer"/>s (the head is always the linear layer of its head weights).</summary>
public interface IDescribedModel : IModel
{
    /// <summary>The layers of <see cref="IModel.Embed"/> for one task's batch, in order.</summary>
    IReadOnlyList<GraphLayer> Body { get; }
}
