using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Training;

/// <summary>
/// One outer step, the same for the trainer, `bench` and the tests: the learning rate from the
/// schedule, the iteration told to learners that anneal, the meta-batch's summed task
/// gradients, the outer optimizer's step.
/// </summary>
public static class MetaIteration
{
    public static Optimizer CreateOptimizer(AlgorithmConfig a, IReadOnlyList<Tensor> parameters) => a.OuterOptimizer switch
    {
        "sgd" => new Sgd(parameters, a.OuterLr),
        _ => new Adam(parameters, a.OuterLr),
    };

    /// <summary>
    /// The outer learning rate at a 1-based iteration: a pure function of the iteration (never
    /// carried in optimizer state), so a resumed run follows the same schedule bit for bit.
    /// linear: Reptile's annealing to 0; cosine: MAML++'s (and SGDR's) half cosine to 0.
    /// </summary>
    public static double ScheduledLr(AlgorithmConfig a, long iteration)
    {
        var progress = (double)(iteration - 1) / a.Iterations;
        return a.OuterLrSchedule switch
        {
            "linear" => a.OuterLr * (1 - progress),
            "cosine" => a.OuterLr * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            _ => a.OuterLr,
        };
    }

    /// <summary>Outer step <paramref name="iteration"/> (1-based). Call inside a dispose scope: it owns the summed gradients.</summary>
    public static MetaStep Run(IMetaLearner learner, AlgorithmConfig a, Optimizer optimizer, MetaBatch batch, long iteration, ExecutionPlan plan)
    {
        optimizer.LearningRate = ScheduledLr(a, iteration);
        (learner as IIterationAware)?.SetIteration(iteration);
        MetaStep step;
        using (PhaseClock.Time("task gradients (wall)"))
            step = plan.Batched ? MetaBatchRunner.BatchedGradient(learner, batch, plan.Device) : MetaBatchRunner.SumTaskGradients(learner, batch, plan.Device, plan.Workers);
        using (PhaseClock.Time("optimizer (wall)")) optimizer.Step(step.Gradients);
        return step;
    }
}
