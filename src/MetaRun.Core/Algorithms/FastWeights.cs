using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// The outer half that every fast-weight learner shares (MAML, ANIL, Meta-SGD, MAML++): run the
/// query set through the adapted weights, then either differentiate its loss with respect to
/// the outer parameters (training) or just score it (evaluation).
/// </summary>
internal static class FastWeights
{
    /// <param name="objectiveOf">Turns the final query loss into the loss to differentiate (MAML++'s multi-step loss); identity if null.</param>
    public static TaskGradient OuterGradient(IModel model, Objective objective, Episode task, IReadOnlyList<Tensor> fast,
        IReadOnlyList<Tensor> outerParameters, double weight, Func<Tensor, Tensor>? objectiveOf = null)
    {
        using var phase = PhaseClock.Time("outer gradient");
        var output = model.Forward(task.QueryX, fast);
        var loss = objective.Loss(output, task.QueryY);
        var total = objectiveOf?.Invoke(loss) ?? loss;
        var grads = Torch.Grad([total * weight], outerParameters, allowUnused: true);
        return new TaskGradient(grads, loss.Item(), objective.Accuracy(output, task.QueryY));
    }

    public static TaskScore Score(IModel model, Objective objective, Episode task, IReadOnlyList<Tensor> fast)
    {
        using var noGrad = Torch.NoGrad();
        var output = model.Forward(task.QueryX, fast);
        return new TaskScore(objective.Loss(output, task.QueryY).Item(), objective.Accuracy(output, task.QueryY));
    }
}
