using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Data;

namespace MetaRun.Training;

/// <summary>The outcome of one meta-batch: the summed task gradients and the mean query metrics.</summary>
public sealed record MetaStep(Tensor?[] Gradients, double Loss, double Accuracy);

/// <summary>
/// Runs a meta-batch's tasks through a learner. Task gradients are summed in task order, so a
/// given seed always gives the same weights, bit for bit.
/// </summary>
public static class MetaBatchRunner
{
    public static IEnumerable<Episode> Episodes(MetaBatch batch, Device device)
    {
        var sx = batch.SupportX.To(device);
        var sy = batch.SupportY.To(device);
        var qx = batch.QueryX.To(device);
        var qy = batch.QueryY.To(device);
        for (var i = 0; i < batch.Tasks; i++) yield return new Episode(sx[i], sy[i], qx[i], qy[i]);
    }

    /// <summary>Sums the tasks' gradients (each weighted 1/tasks) into tensors owned by the caller's scope.</summary>
    public static MetaStep Step(IMetaLearner learner, MetaBatch batch, Device device)
    {
        var n = batch.Tasks;
        var sum = new Tensor?[learner.OuterParameters.Count];
        double loss = 0, accuracy = 0;
        foreach (var task in Episodes(batch, device))
        {
            using var scope = Torch.NewScope();
            var r = learner.TaskGradient(task, 1.0 / n);
            for (var k = 0; k < sum.Length; k++)
            {
                var g = r.Gradients[k];
                if (g == null) continue;
                sum[k] = sum[k] == null ? g.MoveToOuterScope() : Accumulate(sum[k]!, g);
            }
            loss += r.Loss;
            accuracy += r.Accuracy;
        }
        return new MetaStep(sum, loss / n, accuracy / n);
    }

    private static Tensor Accumulate(Tensor total, Tensor g)
    {
        using var noGrad = Torch.NoGrad();
        return total.Add_(g);
    }

    /// <summary>Adapts to and scores episodes 0..count−1 of a split, in order.</summary>
    public static List<TaskScore> Evaluate(IMetaLearner learner, ITaskFamily family, Split split, int count, EpisodeShape shape, int batchSize, Device device)
    {
        var scores = new List<TaskScore>(count);
        for (long first = 0; first < count; first += batchSize)
        {
            using var scope = Torch.NewScope();
            using var batch = family.Sample(split, first, (int)Math.Min(batchSize, count - first), shape);
            foreach (var task in Episodes(batch, device))
            {
                using var taskScope = Torch.NewScope();
                scores.Add(learner.Evaluate(task));
            }
        }
        return scores;
    }
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
