using LibTorch;
using MetaRun.Config;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Reptile (Nichol, Achiam and Schulman 2018, Algorithm 2). For each task i:
///   φ_i ← θ, then k steps of SGD or Adam on the task's loss     (plain training, no graph)
/// and the outer step is θ ← θ + ε · mean_i (φ_i − θ).
/// The trainer stays generic: a task's "gradient" is (θ − φ_i) · weight, which sums to
/// θ − mean_i φ_i, and the outer optimizer is SGD with learning rate ε (annealed linearly to 0
/// by algorithm.outer_lr_schedule, as in the paper). At test time it adapts like the other
/// fast-weight learners: k steps on the support set, then the query is scored.
/// </summary>
public sealed class Reptile(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, bool adam, int innerBatch)
    : FastWeightLearner(model, objective, innerSteps, testInnerSteps)
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Reptile From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, adam: c.Config.InnerOptimizer == OptimizerKind.Adam, c.Config.InnerBatchSize);

    /// <summary>
    /// φ after <paramref name="steps"/> optimizer steps on (x, y), in mini-batches of innerBatch
    /// (0: all). Plain training: Reptile never differentiates through it, so there is no graph to keep.
    /// </summary>
    public override IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph)
    {
        var phi = Model.Parameters.Select(p => p.Detach().Clone().RequiresGrad_()).ToArray();
        // Adam with β1 = 0, as the paper's inner loop: momentum would carry over nothing useful in k steps.
        using Optimizer opt = adam ? new Adam(phi, innerLr, beta1: 0) : new Sgd(phi, innerLr);
        var n = x.Size(0);
        var b = innerBatch > 0 && innerBatch < n ? innerBatch : n;
        for (var s = 0; s < steps; s++)
        {
            using var scope = Torch.NewScope();
            var (bx, by) = b == n ? (x, y) : Batch(x, y, s, b);
            var loss = Objective.Loss(Model.Forward(bx, phi), by);
            opt.Step(Torch.Grad([loss], phi));
        }
        return phi;
    }

    /// <summary>
    /// Step s's mini-batch: a slice of a shuffle of the examples (which come grouped by class), a
    /// pure function of (n, s) so runs repeat; a new shuffle every pass, like epochs over the task's data.
    /// </summary>
    private static (Tensor X, Tensor Y) Batch(Tensor x, Tensor y, int s, long b)
    {
        var n = (int)x.Size(0);
        var start = s * b;
        var idx = new long[b];
        for (var j = 0; j < b; j++)
        {
            var pos = start + j;
            var perm = Permutation(n, (int)(pos / n));
            idx[j] = perm[pos % n];
        }
        var index = Torch.From(idx, b).To(x.Device);
        return (x.IndexSelect(0, index), y.IndexSelect(0, index));
    }

    private static int[] Permutation(int n, int pass)
    {
        var perm = Enumerable.Range(0, n).ToArray();
        new Random(pass).Shuffle(perm);
        return perm;
    }

    public override TaskGradient TaskGradient(Episode task, double weight)
    {
        // Reptile trains on all the task's data: support and query pooled.
        var x = Torch.Cat([task.SupportX, task.QueryX]);
        var y = Torch.Cat([task.SupportY, task.QueryY]);
        IReadOnlyList<Tensor> phi;
        using (PhaseClock.Time("inner loop")) phi = Adapt(x, y, InnerSteps, createGraph: false);
        using var noGrad = Torch.NoGrad();
        var output = Model.Forward(task.QueryX, phi);
        var grads = Model.Parameters.Select((p, i) => (Tensor?)((p - phi[i]) * weight)).ToArray();
        // Its query metrics come after training on the query set too: a training, not a test, score.
        return new TaskGradient(grads, Objective.Loss(output, task.QueryY).Item(), Objective.Accuracy(output, task.QueryY));
    }
}
