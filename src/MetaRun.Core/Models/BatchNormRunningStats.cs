using LibTorch;

namespace MetaRun.Models;

/// <summary>
/// Batch-norm running averages that a learner gathers over its own forward passes on a support
/// set and then normalizes its test inputs with, one test input independent of the others
/// (Ravi and Larochelle 2017's meta-test: the averages restart with every task). Inside
/// <see cref="Collect"/>, each forward pass normalizes with the batch's statistics and moves the
/// k-th batch-norm layer's averages toward them, a ← (1 − m)·a + m·batch (PyTorch's and Torch7's
/// momentum; unbiased variance); inside <see cref="Apply"/>, the k-th layer normalizes with its
/// averages (PyTorch's eval mode). Outside both, batch norm uses the batch's statistics as always.
/// A pass belongs to the thread that opened it: a task's forward passes run on one worker.
/// Models built on <see cref="ModelBase"/> (conv4, resnet12) take part; model.layers networks
/// keep their own batch-norm settings.
/// </summary>
public sealed class BatchNormRunningStats(double momentum) : IDisposable
{
    [ThreadStatic] private static Pass? current;
    private readonly List<(Tensor Mean, Tensor Var)> layers = [];

    public double Momentum { get; } = momentum;

    /// <summary>Layers seen so far (one pair of averages each).</summary>
    public int Layers => layers.Count;

    /// <summary>One forward pass that updates the averages; dispose it when the pass is done.</summary>
    public IDisposable Collect() => new Pass(this, collect: true);

    /// <summary>One forward pass normalized with the averages; dispose it when the pass is done.</summary>
    public IDisposable Apply() => new Pass(this, collect: false);

    /// <summary>Whether a pass is open on this thread.</summary>
    internal static bool InPass => current is not null;

    /// <summary>The batch-norm layer's output inside a pass on this thread; null outside any (use the batch's statistics).</summary>
    internal static Tensor? Normalize(Tensor x, Tensor weight, Tensor bias) => current?.Normalize(x, weight, bias);

    /// <summary>Hands the averages to the current dispose scope (for a predictor that outlives this method); disposing is then optional.</summary>
    public void FreeWithCurrentScope()
    {
        if (Torch.CurrentScope is not { } scope) return;
        foreach (var (mean, variance) in layers)
        {
            scope.Include(mean);
            scope.Include(variance);
        }
    }

    public void Dispose()
    {
        foreach (var (mean, variance) in layers)
        {
            mean.Dispose();
            variance.Dispose();
        }
        layers.Clear();
    }

    private sealed class Pass : IDisposable
    {
        private readonly BatchNormRunningStats owner;
        private readonly bool collect;
        private readonly Pass? previous;
        private int next;

        public Pass(BatchNormRunningStats owner, bool collect)
        {
            (this.owner, this.collect, previous) = (owner, collect, current);
            current = this;
        }

        public Tensor Normalize(Tensor x, Tensor weight, Tensor bias)
        {
            if (next == owner.layers.Count)
            {
                if (!collect) throw new InvalidOperationException($"batch-norm layer {next} has no running averages: no support pass was collected");
                // PyTorch's initial running statistics: mean 0, variance 1.
                var channels = x.Size(1);
                owner.layers.Add((Torch.Zeros([channels], x.DType, x.Device).DetachFromScope(), Torch.Ones([channels], x.DType, x.Device).DetachFromScope()));
            }
            var (mean, variance) = owner.layers[next++];
            return F.BatchNorm(x, mean, variance, weight, bias, training: collect, momentum: owner.Momentum);
        }

        public void Dispose() => current = previous;
    }
}
