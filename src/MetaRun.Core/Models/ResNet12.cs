using LibTorch;

namespace MetaRun.Models;

/// <summary>
/// ResNet-12, the backbone of MetaOptNet (Lee, Maji, Ravichandran and Soatto 2019) and most
/// few-shot work since: four residual blocks of widths w·(1, 2.5, 5, 10) (w = 64: 64, 160, 320,
/// 640), each three 3×3 convolutions with batch norm and leaky ReLU (slope 0.1), a 1×1
/// convolution with batch norm on the shortcut, the sum through a leaky ReLU, then 2×2
/// max-pooling; features are averaged over space (640 for w = 64), then a linear head. At w = 64
/// the body has 12,424,320 weights (tests check the count). DropBlock, which MetaOptNet adds for
/// regularization, is not included. Batch norm uses the current batch's statistics, as in Conv4.
/// </summary>
public sealed class ResNet12 : ModelBase, IDescribedModel
{
    private const int Blocks = 4, Convs = 3;
    private static readonly double[] Widths = [1, 2.5, 5, 10];
    // Per block: 3 × (conv, bn weight, bn bias), then the shortcut's (conv, bn weight, bn bias).
    private const int PerBlock = 3 * (Convs + 1);

    public ResNet12(long[] inputShape, int filters, int outputs, Generator g, Device device)
    {
        var channels = inputShape[0];
        long width = 0;
        for (var b = 0; b < Blocks; b++)
        {
            width = (long)Math.Round(filters * Widths[b]);
            for (var c = 0; c < Convs; c++)
                AddConv($"block{b}.conv{c}", [width, c == 0 ? channels : width, 3, 3], g, device);
            AddConv($"block{b}.shortcut", [width, channels, 1, 1], g, device);
            channels = width;
        }
        Features = width;
        AddHead(XavierUniform([outputs, width], g, device), Torch.Zeros([outputs], device: device));
    }

    private void AddConv(string name, long[] shape, Generator g, Device device)
    {
        Add($"{name}.weight", KaimingNormal(shape, g, device));
        Add($"{name}.bn.weight", Torch.Ones([shape[0]], device: device), ParameterRole.BatchNorm);
        Add($"{name}.bn.bias", Torch.Zeros([shape[0]], device: device), ParameterRole.BatchNorm);
    }

    public override long Features { get; }
    protected override int ExampleRank => 3;

    public IReadOnlyList<GraphLayer> Body =>
    [
        .. Enumerable.Range(0, Blocks).SelectMany(b =>
        {
            GraphLayer[] ConvBn(string name, int padding) => [new GraphConv($"{name}.weight", null, 1, padding), new GraphBatchNorm($"{name}.bn.weight", $"{name}.bn.bias")];
            var main = Enumerable.Range(0, Convs).SelectMany(c => c < Convs - 1 ? [.. ConvBn($"block{b}.conv{c}", 1), new GraphLeakyRelu(0.1)] : ConvBn($"block{b}.conv{c}", 1));
            return (GraphLayer[])[new GraphResidual([.. main], ConvBn($"block{b}.shortcut", 0)), new GraphLeakyRelu(0.1), GraphPool.Max(2)];
        }),
        new GraphGlobalAveragePool(),
    ];

    /// <summary>One task [N, C, H, W] or a meta-batch [T, N, C, H, W] at once (grouped convolutions, batch norm per task).</summary>
    public override Tensor Embed(Tensor input, IReadOnlyList<Tensor> w)
    {
        var (x, tasks) = ChannelsOf(input);
        for (var b = 0; b < Blocks; b++)
        {
            var i = b * PerBlock;
            Tensor ConvBn(Tensor h, int at, int padding) => BatchNorm(Conv(h, w, at, null, tasks, stride: 1, padding), w, at + 1, at + 2, tasks);
            var h = x;
            for (var c = 0; c < Convs; c++)
            {
                h = ConvBn(h, i + 3 * c, padding: 1);
                if (c < Convs - 1) h = F.LeakyRelu(h, 0.1);
            }
            x = F.MaxPool2d(F.LeakyRelu(h + ConvBn(x, i + 3 * Convs, padding: 0), 0.1), 2);
        }
        return FeaturesOf(x.Mean([2, 3]), input, tasks);
    }
}
