using LibTorch;

namespace MetaRun.Algorithms;

/// <summary>The task loss: cross-entropy for classification, mean squared error for regression.</summary>
public sealed class Objective(bool regression)
{
    public bool IsRegression { get; } = regression;

    public Tensor Loss(Tensor output, Tensor target) => IsRegression ? F.MseLoss(output, target) : F.CrossEntropy(output, target);

    public double Accuracy(Tensor output, Tensor target)
    {
        if (IsRegression) return double.NaN;
        using var scope = Torch.NewScope();
        return output.ArgMax(1).Eq(target).To(ScalarType.Float64).Mean().Item();
    }
}
