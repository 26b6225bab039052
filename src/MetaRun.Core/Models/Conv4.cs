using LibTorch;

namespace MetaRun.Models;

/// <summary>
/// The 4-block convolutional network of Vinyals et al. and Finn et al.: each block is a 3×3
/// convolution, batch norm, ReLU, and either a stride-2 convolution (Omniglot, features then
/// averaged over space) or 2×2 max-pooling (miniImageNet, features flattened); then a linear head.
/// Batch norm always uses the current batch's statistics, as in the MAML reference code.
/// </summary>
public sealed class Conv4 : ModelBase
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

    protected override int ExampleRank => 3;

    public override Tensor Embed(Tensor input, IReadOnlyList<Tensor> w)
    {
        if (IsMetaBatch(input)) return EmbedTasks(input, w);
        var x = input;
        for (var b = 0; b < Blocks; b++)
        {
            x = F.Conv2d(x, w[4 * b], w[4 * b + 1], stride: maxPool ? 1 : 2, padding: 1);
            x = F.BatchNorm(x, null, null, w[4 * b + 2], w[4 * b + 3], training: true).Relu();
            if (maxPool) x = F.MaxPool2d(x, 2);
        }
        return maxPool ? x.Flatten(1) : x.Mean([2, 3]);
    }

    /// <summary>
    /// A meta-batch [T, N, C, H, W] in one pass: the tasks' channels side by side ([N, T·C, H, W]),
    /// each convolution a grouped one with one group per task, and batch norm over T·F channels,
    /// which is batch norm per task (its statistics are per channel, over N, H and W).
    /// </summary>
    private Tensor EmbedTasks(Tensor input, IReadOnlyList<Tensor> w)
    {
        long tasks = input.Size(0), n = input.Size(1);
        var x = input.Transpose(0, 1).Reshape(n, tasks * input.Size(2), input.Size(3), input.Size(4));
        for (var b = 0; b < Blocks; b++)
        {
            var own = Parameters[4 * b];
            var kernel = PerTask(w[4 * b], own, tasks).Reshape(tasks * own.Size(0), own.Size(1), own.Size(2), own.Size(3));
            Tensor Flat(int i) => PerTask(w[i], Parameters[i], tasks).Reshape(tasks * own.Size(0));
            x = F.Conv2d(x, kernel, Flat(4 * b + 1), stride: maxPool ? 1 : 2, padding: 1, groups: (int)tasks);
            x = F.BatchNorm(x, null, null, Flat(4 * b + 2), Flat(4 * b + 3), training: true).Relu();
            if (maxPool) x = F.MaxPool2d(x, 2);
        }
        var features = maxPool ? x.Reshape(n, tasks, Features) : x.Mean([2, 3]).Reshape(n, tasks, Features);
        return features.Transpose(0, 1);
    }
}
