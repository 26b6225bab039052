using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Distributed;

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
        OptimizerKind.Sgd => new Sgd(parameters, a.OuterLr),
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
            LrSchedule.Linear => a.OuterLr * (1 - progress),
            LrSchedule.Cosine => a.OuterLr * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            _ => a.OuterLr,
        };
    }

    /// <summary>
    /// Outer step <paramref name="iteration"/> (1-based). Call inside a dispose scope: it owns the
    /// summed gradients. In a data-parallel run <paramref name="batch"/> is this rank's share of
    /// the meta-batch; one all-reduce sums gradients and metrics over the ranks, so every rank
    /// takes the same outer step. <paramref name="stop"/> (a graceful stop) is read once the
    /// gradients are in: <see cref="MetaStep.Stop"/> says whether to stop after this step.
    /// </summary>
    public static MetaStep Run(IMetaLearner learner, AlgorithmConfig a, Optimizer optimizer, MetaBatch batch, long iteration, ExecutionPlan plan,
        DataParallel? parallel = null, CancellationToken stop = default)
    {
        // Every rank decides alike, so all stop together here rather than deadlock in the all-reduce.
        if (parallel != null && a.MetaBatchSize < parallel.WorldSize)
            throw new ConfigException($"algorithm.meta_batch_size: {a.MetaBatchSize} episodes cannot be shared by {parallel.WorldSize} processes; every rank needs at least one");
        optimizer.LearningRate = ScheduledLr(a, iteration);
        (learner as IIterationAware)?.SetIteration(iteration);
        MetaStep step;
        // A rank's tasks are weighted by the whole meta-batch: the all-reduce's sum is then the mean.
        var total = parallel == null ? (int?)null : a.MetaBatchSize;
        using (PhaseClock.Time("task gradients (wall)"))
            step = plan.Batched ? MetaBatchRunner.BatchedGradient(learner, batch, plan.Device, total) : MetaBatchRunner.SumTaskGradients(learner, batch, plan.Device, plan.Workers, total);
        if (parallel != null)
        {
            // Only when timing (bench): a barrier first, so the all-reduce's own time is apart
            // from waiting for the slowest rank. Training issues the all-reduce alone.
            if (PhaseClock.Enabled)
                using (PhaseClock.Time("waiting for the slowest rank (wall)")) parallel.Barrier($"the barrier of iteration {iteration}");
            var n = batch.Tasks;
            double[] sums;
            using (PhaseClock.Time("all-reduce (wall)"))
                sums = parallel.AllReduce(step.Gradients, [step.Loss * n, step.Accuracy * n, stop.IsCancellationRequested ? 1 : 0], $"the all-reduce of iteration {iteration}");
            // A signal reaches the ranks at different moments: the all-reduce carries it, so every
            // rank stops after this same step instead of one waiting for the others until the timeout.
            step = step with { Loss = sums[0] / a.MetaBatchSize, Accuracy = sums[1] / a.MetaBatchSize, Stop = sums[2] > 0 };
        }
        else
        {
            step = step with { Stop = stop.IsCancellationRequested };
        }
        if (learner is IOuterStepAware aware) optimizer.LearningRate = aware.BeforeOuterStep(step.Gradients, optimizer.LearningRate);
        using (PhaseClock.Time("optimizer (wall)")) optimizer.Step(step.Gradients);
        return step;
    }
}
