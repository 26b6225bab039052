using LibTorch;

namespace MetaRun.Algorithms;

/// <summary>The number a run is judged by: its name in metrics and eval.json, and which way is better.</summary>
public sealed record HeadlineMetric(string Name, bool HigherIsBetter)
{
    /// <summary>The metric of one scored task.</summary>
    public double Of(TaskScore score) => Name == "mse" ? score.Loss : score.Accuracy;

    /// <summary>A value where larger is always better, to pick the best checkpoint with.</summary>
    public double Goodness(double value) => HigherIsBetter ? value : -value;
}

/// <summary>The task loss: cross-entropy for classification, mean squared error for regression.</summary>
public sealed class Objective(bool regression)
{
    public bool IsRegression { get; } = regression;

    /// <summary>Accuracy for classification; for regression the query MSE (the loss itself).</summary>
    public HeadlineMetric Headline { get; } = regression ? new HeadlineMetric("mse", HigherIsBetter: false) : new HeadlineMetric("accuracy", HigherIsBetter: true);

    public Tensor Loss(Tensor output, Tensor target) => IsRegression ? F.MseLoss(output, target) : F.CrossEntropy(output, target);

    public double Accuracy(Tensor output, Tensor target)
    {
        if (IsRegression) return double.NaN;
        using var scope = Torch.NewScope();
        return output.ArgMax(1).Eq(target).To(ScalarType.Float64).Mean().Item();
    }

    /// <summary>Loss and accuracy of outputs against targets, without a graph.</summary>
    public TaskScore Score(Tensor output, Tensor target) => new(Loss(output, target).Item(), Accuracy(output, target));
}
