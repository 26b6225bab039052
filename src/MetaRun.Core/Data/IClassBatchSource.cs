using LibTorch;

namespace MetaRun.Data;

/// <summary>
/// Optional for a classification task family: ordinary mini-batches over all classes of the
/// training split with global labels 0..ClassCount(Train)−1, for algorithms that pretrain one
/// classifier (the baseline of Chen et al. 2019). Batch <c>index</c> is a pure function of
/// (seed, index), like episodes, so a resumed run sees the same batches.
/// </summary>
public interface IClassBatchSource
{
    int ClassCount(Split split);

    /// <summary>Inputs [size, C, H, W] float32 and labels [size] int64, CPU tensors the caller owns.</summary>
    (Tensor X, Tensor Y) SampleClassBatch(long index, int size);
}
