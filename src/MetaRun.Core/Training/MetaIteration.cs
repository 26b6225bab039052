using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Distributed;

namespace MetaRun.Training;

/// <summary>The outcome of one meta-batch: the summed task gradients and the mean query metrics.</summary>
/// <param name="Stop">Whether a stop was asked for at this step — by any rank in a data-parallel run, so all stop after the same step.</param>
public sealed record MetaStep(Tensor?[] Gradients, double Loss, double Accuracy, bool Stop = false);

/// <summary>
/// One outer step, the same for the trainer, `bench` and the tests, all of it in this file: the
/// learning rate from the schedule, the iteration told to learners that anneal, each task's
/// gradient from the learner (on the workers, or the whole meta-batch at once when batched)
/// summed in task order, the all-reduce over ranks, the outer optimizer's step.
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
            step = plan.Batched ? BatchedGradient(learner, batch, plan.Device, plan.Workers, plan.TasksPerRun, total) : SumTaskGradients(learner, batch, plan.Device, plan.Workers, total);
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
        if (learner is ITakesOuterStep own)
        {
            var context = new OuterStepContext(plan.Workers, a.MetaBatchSize, v => parallel?.Gather(v, $"the outer step of iteration {iteration}") ?? v);
            using (PhaseClock.Time("outer step (wall)"))
                if (own.TakeOuterStep(step.Gradients, context)) return step;
        }
        if (learner is IOuterStepAware aware) optimizer.LearningRate = aware.BeforeOuterStep(step.Gradients, optimizer.LearningRate);
        using (PhaseClock.Time("optimizer (wall)")) optimizer.Step(step.Gradients);
        return step;
    }

    /// <summary>
    /// The meta-batch's tasks on the workers, each task's gradient (weighted 1/<paramref name="metaBatchSize"/>:
    /// the whole meta-batch's size, of which a data-parallel rank holds a share) kept apart and
    /// summed in task order afterwards, so a given seed and thread layout always gives the same
    /// weights, bit for bit. The sums belong to the caller's dispose scope.
    /// </summary>
    public static MetaStep SumTaskGradients(IMetaLearner learner, MetaBatch batch, Device device, int workers, int? metaBatchSize = null)
    {
        var tasks = TaskWorkers.Episodes(batch, device);
        return Sum(learner, tasks, [.. tasks.Select(_ => 1)], workers, 1.0 / (metaBatchSize ?? tasks.Length));
    }

    /// <summary>
    /// The same sum computed batched: the meta-batch cut into runs of at most <paramref name="tasksPerRun"/>
    /// consecutive tasks (0: one run), each run one episode with a task dimension that a fast-weight
    /// learner computes all at once (per-task weights side by side, grouped convolutions), its
    /// gradient the sum of its tasks' gradients up to summation order; the runs go to the workers
    /// and their gradients are summed in order. On the CPU each worker is one thread: small kernels
    /// keep two single-threaded workers busier than two threads on one kernel.
    /// </summary>
    public static MetaStep BatchedGradient(IMetaLearner learner, MetaBatch batch, Device device, int workers, int tasksPerRun = 0, int? metaBatchSize = null)
    {
        var runs = TaskWorkers.Runs(batch, device, tasksPerRun);
        return Sum(learner, runs, [.. runs.Select(r => (int)r.SupportX.Size(0))], workers, 1.0 / (metaBatchSize ?? batch.Tasks));
    }

    /// <summary>The gradients of <paramref name="episodes"/> (holding <paramref name="sizes"/> tasks each) on the workers, summed in order; metrics are the mean over tasks.</summary>
    private static MetaStep Sum(IMetaLearner learner, Episode[] episodes, int[] sizes, int workers, double weight)
    {
        var n = episodes.Length;
        var results = new TaskGradient[n];
        TaskWorkers.ForEach(n, workers, i =>
        {
            var r = learner.TaskGradient(episodes[i], weight);
            foreach (var g in r.Gradients) g?.DetachFromScope();
            results[i] = r;
        });

        var scope = Torch.CurrentScope ?? throw new InvalidOperationException("MetaIteration.SumTaskGradients must run inside a dispose scope that owns its gradients");
        var sum = new Tensor?[learner.OuterParameters.Count];
        using (PhaseClock.Time("summing task gradients"))
        using (Torch.NoGrad())
        {
            foreach (var r in results)
                for (var k = 0; k < sum.Length; k++)
                {
                    var g = r.Gradients[k];
                    if (g == null) continue;
                    if (sum[k] == null)
                    {
                        sum[k] = scope.Include(g);
                    }
                    else
                    {
                        sum[k]!.Add_(g);
                        g.Dispose();
                    }
                }
        }
        // One task per episode: the plain mean, as always; runs of tasks: weighted by their sizes.
        double tasks = sizes.Sum(), loss = 0, accuracy = 0;
        for (var i = 0; i < n; i++) (loss, accuracy) = (loss + sizes[i] * results[i].Loss, accuracy + sizes[i] * results[i].Accuracy);
        return new MetaStep(sum, loss / tasks, accuracy / tasks);
    }
}
