using LibTorch;

namespace MetaRun.Models;

/// <summary>
/// The 4-block convolutional network of Vinyals et al. and Finn et al.: each block is a 3×3
/// convolution, batch norm, ReLU, and either a stride-2 convolution (Omniglot, features then
/// averaged over space) or 2×2 max-pooling (miniImageNet, features flattened); then a linear head.
/// Batch norm always uses the current batch's statistics, as in the MAML reference code.
/// </summary>
public sealed class Conv4 : ModelBase, IDescribedModel
{
    private const int Blocks = 4;
    private readonly bool maxPool;

    public Conv4(long[] inputShape, int filters, int outputs, bool maxPool, Generator g, Device device)
    {
        this.maxPool = maxPool;
        long channels = inputShape[0];
        for (var b = 0; b < Blocks; b++)
        {
            Add($"block{b}.conv.weight", XavierUniform([filters, channels, 3, 3], g, device));
            Add($"block{b}.conv.bias", Torch.Zeros([filters], device: device));
            Add($"block{b}.bn.weight", Torch.Ones([filters], device: device), ParameterRole.BatchNorm);
            Add($"block{b}.bn.bias", Torch.Zeros([filters], device: device), ParameterRole.BatchNorm);
            channels = filters;
        }
        long side = inputShape[1];
        for (var b = 0; b < Blocks; b++) side = maxPool ? side / 2 : (side + 1) / 2;
        var features = maxPool ? filters * side * side : filters;
        AddHead(XavierUniform([outputs, features], g, device), Torch.Zeros([outputs], device: device));
        Features = features;
    }

    public override long Features { get; }

    public IReadOnlyList<GraphLayer> Body =>
    [
        .. Enumerable.Range(0, Blocks).SelectMany(b => (GraphLayer[])
        [
            new GraphConv($"block{b}.conv.weight", $"block{b}.conv.bias", Stride: maxPool ? 1 : 2, Padding: 1),
            new GraphBatchNorm($"block{b}.bn.weight", $"block{b}.bn.bias"),
            new GraphRelu(),
            .. maxPool ? new GraphLayer[] { GraphPool.Max(2) } : [],
        ]),
        maxPool ? new GraphFlatten() : new GraphGlobalAveragePool(),
    ];

    protected override int ExampleRank => 3;

    /// <summary>
    /// Whether a meta-batch's blocks run as one blocked convolution stack (<see cref="F.ConvStack"/>):
    /// the Omniglot form (stride-2 convolutions, features averaged over space) on the CPU, in a pass
    /// differentiated once (<see cref="FirstOrderPasses"/>), with the batch's statistics and no
    /// gradient wanted for the images themselves (robustness evaluation's attacks want one).
    /// </summary>
    private bool TakesConvStack(Tensor input, long tasks) =>
        tasks > 1 && !maxPool && FirstOrderPasses.Active && F.ConvStackAvailable && !BatchNormRunningStats.InPass &&
        input.Device.Type == DeviceType.Cpu && input.DType == ScalarType.Float32 && !input.RequiresGrad && Parameters[0].Size(0) % 16 == 0 &&
        input.Size(2) <= 3; // the stack's first convolution takes up to 32 values per output (C·3·3)

    /// <summary>One task [N, C, H, W] or a meta-batch [T, N, C, H, W] at once (grouped convolutions, batch norm per task).</summary>
    public override Tensor Embed(Tensor input, IReadOnlyList<Tensor> w)
    {
        var (x, tasks) = ChannelsOf(input);
        if (TakesConvStack(input, tasks))
        {
            var perTask = Enumerable.Range(0, 4 * Blocks).Select(i => PerTask(w[i], Parameters[i], tasks)).ToArray();
            return FeaturesOf(F.ConvStack(x, perTask, stride: 2, padding: 1), input, tasks);
        }
        for (var b = 0; b < Blocks; b++)
        {
            x = Conv(x, w, 4 * b, 4 * b + 1, tasks, stride: maxPool ? 1 : 2, padding: 1);
            x = BatchNorm(x, w, 4 * b + 2, 4 * b + 3, tasks).Relu();
            if (maxPool) x = F.MaxPool2d(x, 2);
        }
        return FeaturesOf(maxPool ? x.Flatten(1) : x.Mean([2, 3]), input, tasks);
    }
}
