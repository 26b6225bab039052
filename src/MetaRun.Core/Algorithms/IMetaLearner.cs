using LibTorch;

namespace MetaRun.Algorithms;

/// <summary>One task: a labelled support set to adapt on and a query set to be scored on.</summary>
public readonly record struct Episode(Tensor SupportX, Tensor SupportY, Tensor QueryX, Tensor QueryY);

/// <summary>What one task contributes to an outer step: gradients for the outer parameters and its query metrics.</summary>
public sealed record TaskGradient(Tensor?[] Gradients, double Loss, double Accuracy);

/// <summary>
/// A learner adapted to one support set: its outputs for the query examples ([queries, ways]
/// logits) and the tensors the adaptation produced, by name, for saving (fast weights, prototypes, a head).
/// </summary>
public sealed record AdaptedTask(Tensor Logits, IReadOnlyList<KeyValuePair<string, Tensor>> State);

/// <summary>Query loss and accuracy (NaN for regression) after adapting to one task.</summary>
public readonly record struct TaskScore(double Loss, double Accuracy);

/// <summary>
/// A meta-learning algorithm, seen from the trainer: a set of outer parameters, the gradient
/// one task gives them, and how to adapt and score on a task at evaluation time. The trainer
/// averages task gradients over the meta-batch and applies the outer optimizer.
/// </summary>
public interface IMetaLearner : IDisposable
{
    IReadOnlyList<Tensor> OuterParameters { get; }
    IReadOnlyList<string> OuterParameterNames { get; }

    /// <summary>Gradient of this task's outer loss, already multiplied by <paramref name="weight"/> (1/tasks).</summary>
    TaskGradient TaskGradient(Episode task, double weight);

    /// <summary>
    /// Adapts on the support set with the evaluation settings and predicts the query set (its
    /// labels are not read): what <see cref="Evaluate"/> scores and `metarun adapt` reports.
    /// </summary>
    AdaptedTask AdaptTo(Episode task);

    /// <summary>Adapts on the support set with the evaluation settings and scores on the query set.</summary>
    TaskScore Evaluate(Episode task);

    /// <summary>
    /// Adapts on the support set with the evaluation settings and returns the adapted classifier:
    /// query inputs to logits, differentiable in the inputs, so an attack can perturb the query
    /// set against the very model it is scored by (`metarun eval --attack`).
    /// </summary>
    Func<Tensor, Tensor> Predictor(Episode task);
}

/// <summary>
/// Optional for a learner whose update depends on how far training has come (MAML++'s
/// derivative-order and multi-step-loss annealing). The trainer calls it before each outer step
/// with the 1-based iteration, so a resumed run sees the same values as an uninterrupted one.
/// </summary>
public interface IIterationAware
{
    void SetIteration(long iteration);
}

/// <summary>
/// Optional for a learner that trains on its own batches instead of the family's episodes (the
/// baseline's ordinary mini-batches over all training classes). Batch <c>index</c> must be a pure
/// function of the seed and the index, like episodes, so resumption stays exact.
/// </summary>
public interface ITrainingBatchSource
{
    MetaRun.Data.MetaBatch TrainingBatch(long index);
}

/// <summary>
/// Optional for a learner that sets rates of its own from the meta-gradient (Alpha MAML's
/// hypergradient descent). Called with the meta-batch's gradients — after the all-reduce, so
/// every rank computes the same — before the optimizer's step: it may update tensors of its own
/// and set their gradients to null so the optimizer leaves them alone, and it returns the outer
/// learning rate for this step.
/// </summary>
public interface IOuterStepAware
{
    double BeforeOuterStep(Tensor?[] gradients, double learningRate);
}

/// <summary>Optional for a learner whose hyperparameters change as it trains: the trainer logs them with every iteration's metrics.</summary>
public interface ITracesHyperparameters
{
    /// <summary>Column names in metrics.csv and keys in metrics.jsonl.</summary>
    IReadOnlyList<string> TracedNames { get; }

    /// <summary>Their values now, in <see cref="TracedNames"/>' order.</summary>
    IReadOnlyList<double> Traced();
}

/// <summary>
/// What a learner that takes the outer step itself may use: the task workers, the whole
/// meta-batch's size (each task weighs 1/size) and <paramref name="Gather"/>: every rank's values
/// concatenated in rank order (the identity in one process). Ranks hold consecutive slices of the
/// meta-batch, so per-task values gathered come in task order, and a sum over them taken in that
/// order rounds the same however the tasks are split over ranks.
/// </summary>
public sealed record OuterStepContext(int Workers, int MetaBatchSize, Func<double[], double[]> Gather);

/// <summary>
/// Optional for a learner whose outer step is not an optimizer's step on the mean gradient (TRPO
/// in meta-RL: a trust-region step that evaluates the meta-batch's tasks again). Called with the
/// meta-batch's mean gradient after the all-reduce, on every rank alike; it returns whether it
/// moved the outer parameters itself (then the optimizer is not stepped).
/// </summary>
public interface ITakesOuterStep
{
    bool TakeOuterStep(Tensor?[] gradients, OuterStepContext context);
}

/// <summary>
/// A learner whose tasks are environments (meta-RL): how its policy adapts to a task, step by
/// step, with the rollouts it collects; evaluation reads the returns off them.
/// </summary>
public interface IAdaptsPolicy
{
    /// <summary>
    /// Rollouts before adaptation and after each of <paramref name="steps"/> policy-gradient steps,
    /// <paramref name="trajectories"/> per rollout; the first step has size <paramref name="firstLr"/>,
    /// later ones <paramref name="laterLr"/>; each step learns from the rollouts before it.
    /// </summary>
    IReadOnlyList<MetaRun.Data.Trajectories> AdaptationRollouts(Episode task, int steps, int trajectories, double firstLr, double laterLr);
}

/// <summary>
/// Optional for a regression learner whose prediction is a distribution (ABML's and BMAML's
/// average over weight samples or particles, with their observation noise): per query the mean
/// and variance of a Gaussian summarising it, after adapting to the support set with the
/// evaluation settings. `eval` reports their Gaussian NLL and 90%-interval coverage.
/// </summary>
public interface IPredictiveGaussian
{
    (Tensor Mean, Tensor Variance) PredictiveGaussian(Episode task);
}
