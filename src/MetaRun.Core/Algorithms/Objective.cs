using LibTorch;
using MetaRun.Config;

namespace MetaRun.Algorithms;

/// <summary>The number a run is judged by: its name in metrics and eval.json, and which way is better.</summary>
public sealed record HeadlineMetric(string Name, bool HigherIsBetter)
{
    public static readonly HeadlineMetric Accuracy = new("accuracy", HigherIsBetter: true);
    public static readonly HeadlineMetric Mse = new("mse", HigherIsBetter: false);
    /// <summary>Meta-RL: minus the average return after adaptation (the loss its learners report).</summary>
    public static readonly HeadlineMetric NegativeReturn = new("negative return", HigherIsBetter: false);

    /// <summary>Accuracy for classification; for regression the query MSE (the loss itself).</summary>
    public static HeadlineMetric For(bool regression) => regression ? Mse : Accuracy;

    /// <summary>The metric of one scored task: accuracy is the one higher-is-better headline, the loss the lower-is-better one.</summary>
    public double Of(TaskScore score) => HigherIsBetter ? score.Accuracy : score.Loss;

    /// <summary>A value where larger is always better, to pick the best checkpoint with.</summary>
    public double Goodness(double value) => HigherIsBetter ? value : -value;
}

/// <summary>The task loss: cross-entropy for classification, mean squared error for regression.</summary>
public sealed class Objective(bool regression, HeadlineMetric? headline = null)
{
    public bool IsRegression { get; } = regression;

    /// <summary>The objective of a data set (<see cref="Settings.IsRegression"/> decides which).</summary>
    public static Objective For(Dataset dataset) => new(dataset.IsRegression());

    public HeadlineMetric Headline { get; } = headline ?? HeadlineMetric.For(regression);

    /// <summary>
    /// The task's loss; for a meta-batch (outputs [T, N, ...]) the sum over tasks of each task's
    /// mean loss, so that its gradient with respect to one task's weights is that task's own.
    /// </summary>
    public Tensor Loss(Tensor output, Tensor target)
    {
        if (output.Dim == 3)
        {
            var perTask = output.Size(1) * (IsRegression ? output.Size(2) : 1);
            var sum = IsRegression ? F.MseLoss(output, target, Reduction.Sum)
                : F.CrossEntropy(output.Reshape(-1, output.Size(2)), target.Reshape(-1), Reduction.Sum);
            return sum / perTask;
        }
        return IsRegression ? F.MseLoss(output, target) : F.CrossEntropy(output, target);
    }

    /// <summary>Tasks in an output: T for a meta-batch's [T, N, ...], else 1.</summary>
    public static long Tasks(Tensor output) => output.Dim == 3 ? output.Size(0) : 1;

    /// <summary>Share of correct predictions (over every task of a meta-batch, which all have the same size).</summary>
    public double Accuracy(Tensor output, Tensor target)
    {
        if (IsRegression) return double.NaN;
        using var scope = Torch.NewScope();
        return output.ArgMax(output.Dim - 1).Eq(target).To(ScalarType.Float64).Mean().Item();
    }

    /// <summary>Loss and accuracy of outputs against targets, without a graph.</summary>
    public TaskScore Score(Tensor output, Tensor target) => new(Loss(output, target).Item(), Accuracy(output, target));
}
