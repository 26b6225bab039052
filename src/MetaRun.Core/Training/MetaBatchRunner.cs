using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Data;

namespace MetaRun.Training;

/// <summary>The outcome of one meta-batch: the summed task gradients and the mean query metrics.</summary>
/// <param name="Stop">Whether a stop was asked for at this step — by any rank in a data-parallel run, so all stop after the same step.</param>
public sealed record MetaStep(Tensor?[] Gradients, double Loss, double Accuracy, bool Stop = false);

/// <summary>
/// Runs a meta-batch's tasks through a learner, several at once on worker threads. Each task's
/// gradients are kept apart and summed in task order afterwards, so a given seed and thread
/// layout always gives the same weights, bit for bit.
/// </summary>
public static class MetaBatchRunner
{
    public static Episode[] Episodes(MetaBatch batch, Device device)
    {
        var sx = batch.SupportX.To(device);
        var sy = batch.SupportY.To(device);
        var qx = batch.QueryX.To(device);
        var qy = batch.QueryY.To(device);
        return Enumerable.Range(0, batch.Tasks).Select(i => new Episode(sx[i], sy[i], qx[i], qy[i])).ToArray();
    }

    /// <summary>
    /// Sums the tasks' gradients (each weighted 1/<paramref name="metaBatchSize"/>: the whole
    /// meta-batch's size, of which a data-parallel rank holds a share) into tensors owned by the
    /// caller's scope.
    /// </summary>
    public static MetaStep SumTaskGradients(IMetaLearner learner, MetaBatch batch, Device device, int workers, int? metaBatchSize = null)
    {
        var tasks = Episodes(batch, device);
        var n = tasks.Length;
        var weight = 1.0 / (metaBatchSize ?? n);
        var results = new TaskGradient[n];
        ForEachTask(n, workers, i =>
        {
            var r = learner.TaskGradient(tasks[i], weight);
            foreach (var g in r.Gradients) g?.DetachFromScope();
            results[i] = r;
        });

        var scope = DisposeScopeOfCaller();
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
        return new MetaStep(sum, results.Average(r => r.Loss), results.Average(r => r.Accuracy));
    }

    /// <summary>
    /// The same sum in one batched computation: the whole meta-batch is one episode with a task
    /// dimension, which a fast-weight learner runs all at once (per-task weights side by side,
    /// grouped convolutions). Its gradient is the sum of the tasks' gradients, up to summation order.
    /// </summary>
    public static MetaStep BatchedGradient(IMetaLearner learner, MetaBatch batch, Device device, int? metaBatchSize = null)
    {
        var all = new Episode(batch.SupportX.To(device), batch.SupportY.To(device), batch.QueryX.To(device), batch.QueryY.To(device));
        var r = learner.TaskGradient(all, 1.0 / (metaBatchSize ?? batch.Tasks));
        return new MetaStep(r.Gradients, r.Loss, r.Accuracy);
    }

    /// <summary>Adapts to and scores episodes start..start+count−1 of a split, in order.</summary>
    public static List<TaskScore> Evaluate(IMetaLearner learner, ITaskFamily family, Split split, long start, int count, EpisodeShape shape, int batchSize, Device device, int workers) =>
        ForEachEpisode(family, split, start, count, shape, batchSize, device, workers, (task, _) => learner.Evaluate(task));

    /// <summary>score(episode, its index in the split) for episodes start..start+count−1, in order, on up to <paramref name="workers"/> threads.</summary>
    public static List<T> ForEachEpisode<T>(ITaskFamily family, Split split, long start, int count, EpisodeShape shape, int batchSize, Device device, int workers, Func<Episode, long, T> score)
    {
        var scores = new List<T>(count);
        for (long first = 0; first < count; first += batchSize)
        {
            using var scope = Torch.NewScope();
            using var batch = family.Sample(split, start + first, (int)Math.Min(batchSize, count - first), shape);
            var tasks = Episodes(batch, device);
            var results = new T[tasks.Length];
            ForEachTask(tasks.Length, workers, i => results[i] = score(tasks[i], start + first + i));
            scores.AddRange(results);
        }
        return scores;
    }

    /// <summary>Runs body(0..n−1) on up to <paramref name="workers"/> threads, each task inside its own dispose scope.</summary>
    private static void ForEachTask(int n, int workers, Action<int> body)
    {
        if (workers <= 1 || n <= 1)
        {
            for (var i = 0; i < n; i++)
            {
                using var scope = Torch.NewScope();
                body(i);
            }
            return;
        }
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = workers }, i =>
        {
            using var scope = Torch.NewScope();
            body(i);
        });
    }

    private static DisposeScope DisposeScopeOfCaller() =>
        Torch.CurrentScope ?? throw new InvalidOperationException("MetaBatchRunner.SumTaskGradients must run inside a dispose scope that owns its gradients");
}

/// <summary>Mean and 95% confidence half-width (1.96 standard errors) of per-episode values.</summary>
public readonly record struct Summary(double Mean, double Ci95, int Count)
{
    public static Summary Of(IReadOnlyCollection<double> values)
    {
        var n = values.Count;
        if (n == 0) return new Summary(double.NaN, double.NaN, 0);
        var mean = values.Average();
        var variance = n > 1 ? values.Sum(v => (v - mean) * (v - mean)) / (n - 1) : 0;
        return new Summary(mean, 1.96 * Math.Sqrt(variance / n), n);
    }
}
