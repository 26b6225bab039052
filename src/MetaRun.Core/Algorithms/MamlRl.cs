using System.Collections.Concurrent;
using LibTorch;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// MAML for reinforcement learning (Finn, Abbeel and Levine 2017, Algorithm 3). The policy π_θ
/// is a Gaussian MLP, mean f_θ(s) and a learned state-independent log σ. For each task T_i:
///   D_i  ← K trajectories of π_θ in T_i
///   θ'_i ← θ − α ∇θ L(θ; D_i),  L = −mean_t log π(a_t|s_t) Â_t    (REINFORCE; Â: returns-to-go
///                                                                  minus a linear baseline fitted on D_i)
///   D'_i ← K trajectories of π_θ'_i in T_i
/// Outer step on Σ_i L(θ'_i; D'_i): TRPO (max KL δ, CG on Fisher-vector products through the
/// adaptation, backtracking line search), or with trpo_max_kl 0 the outer optimizer on its
/// gradient. MAML differentiates through θ'_i (second order); FOMAML treats ∇θ L(θ; D_i) as a
/// constant. With inner_steps 0 it is the paper's "pretrained" baseline (one policy trained on
/// all tasks jointly); with data.observe_goal the policy is the oracle that sees the goal.
/// </summary>
public sealed class MamlRl : IMetaLearner, ITakesOuterStep, ITracesHyperparameters, IAdaptsPolicy
{
    private readonly IModel model;
    private readonly IEnvironmentFamily env;
    private readonly Tensor logStd;
    private readonly double innerLr, maxKl;
    private readonly int innerSteps, testInnerSteps, trajectories;
    private readonly bool firstOrder;
    private readonly Tensor[] parameters;
    private readonly ConcurrentDictionary<long, Retained> retained = new();
    private double[] traced = [double.NaN, double.NaN];

    /// <summary>What the outer step needs of a task: its weighted surrogate gradient (flat), its support batches, its query batch and the post-adaptation policy that sampled it.</summary>
    private sealed record Retained(double Before, double After, double[] Gradient, PolicyBatch[] Support, PolicyBatch? Query, Tensor? OldMean, Tensor? OldLogStd, Tensor? OldLogProb) : IDisposable
    {
        public void Dispose()
        {
            foreach (var b in Support) b.Dispose();
            Query?.Dispose();
            OldMean?.Dispose();
            OldLogStd?.Dispose();
            OldLogProb?.Dispose();
        }
    }

    public MamlRl(IModel model, IEnvironmentFamily env, double innerLr, int innerSteps, int testInnerSteps, int trajectories, double maxKl, bool firstOrder)
    {
        (this.model, this.env, this.innerLr, this.innerSteps, this.testInnerSteps, this.trajectories, this.maxKl, this.firstOrder) =
            (model, env, innerLr, innerSteps, testInnerSteps, trajectories, maxKl, firstOrder);
        using (Torch.NoGrad()) logStd = Torch.Zeros([env.ActionSize], device: model.Parameters[0].Device).DetachFromScope().RequiresGrad_();
        parameters = [.. model.Parameters, logStd];
    }

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static MamlRl From(AlgorithmContext c, bool firstOrder) =>
        new(c.Model, c.Family as IEnvironmentFamily ?? throw new ConfigException("data.dataset: meta-RL needs an environment task family (navigation2d)"),
            c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.Trajectories, c.Config.TrpoMaxKl, firstOrder);

    public IReadOnlyList<Tensor> OuterParameters => parameters;
    public IReadOnlyList<string> OuterParameterNames => [.. model.ParameterNames, "policy.log_std"];

    public IReadOnlyList<string> TracedNames => ["return_before", "return_after"];
    public IReadOnlyList<double> Traced() => traced;

    private Tensor Mean(Tensor observations, IReadOnlyList<Tensor> w) => model.Forward(observations, w.Take(w.Count - 1).ToArray());

    private Trajectories Rollout(Episode task, int stream, int count, IReadOnlyList<Tensor> w)
    {
        var weights = w.Take(w.Count - 1).ToArray();
        return env.Rollout(task, stream, count, obs => model.Forward(obs, weights), [.. w[^1].To(ScalarType.Float64).ToArray<double>()]);
    }

    /// <summary>One policy-gradient step on a batch: w − lr ∇w L(w; batch), differentiable in w when <paramref name="createGraph"/>.</summary>
    private Tensor[] Step(IReadOnlyList<Tensor> w, PolicyBatch batch, double lr, bool createGraph)
    {
        var loss = PolicyGradient.Surrogate(batch, Mean(batch.Observations, w), w[^1]);
        var grads = Torch.Grad([loss], w, createGraph: createGraph);
        return [.. w.Select((p, i) => p - lr * grads[i]!)];
    }

    private IReadOnlyList<Tensor> Adapt(PolicyBatch[] support, bool createGraph)
    {
        IReadOnlyList<Tensor> fast = parameters;
        foreach (var b in support) fast = Step(fast, b, innerLr, createGraph);
        return fast;
    }

    private static long IndexOf(Episode task) => task.SupportY.ToArray<long>()[1];

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        var support = new PolicyBatch[innerSteps];
        IReadOnlyList<Tensor> fast = parameters;
        var before = double.NaN;
        for (var s = 0; s < innerSteps; s++)
        {
            var d = Rollout(task, s, trajectories, fast);
            if (s == 0) before = d.AverageReturn();
            support[s] = PolicyGradient.Batch(d);
            fast = Step(fast, support[s], innerLr, createGraph: !firstOrder);
        }
        var q = Rollout(task, innerSteps, trajectories, fast);
        var after = q.AverageReturn();
        if (innerSteps == 0) before = after;
        var query = PolicyGradient.Batch(q);
        var mean = Mean(query.Observations, fast);
        var loss = PolicyGradient.Surrogate(query, mean, fast[^1]);
        var grads = Torch.Grad([loss * weight], parameters, allowUnused: true);
        Retained kept;
        if (maxKl > 0)
        {
            using var noGrad = Torch.NoGrad();
            var oldMean = mean.Detach();
            var oldLogStd = fast[^1].Detach();
            var oldLogProb = PolicyGradient.LogProb(query.Actions, oldMean, oldLogStd);
            foreach (var b in support) b.DetachFromScope();
            kept = new Retained(before, after, Flatten(grads), support, query.DetachFromScope(), oldMean.DetachFromScope(), oldLogStd.DetachFromScope(), oldLogProb.DetachFromScope());
        }
        else kept = new Retained(before, after, [], [], null, null, null, null);
        retained[IndexOf(task)] = kept;
        return new TaskGradient(grads, -after, double.NaN);
    }

    /// <summary>The outer step on the tasks TaskGradient kept; TRPO's uses their own gradients, not the trainer's all-reduced sum (see TrustRegionStep).</summary>
    public bool TakeOuterStep(Tensor?[] gradients, OuterStepContext context)
    {
        var tasks = retained.OrderBy(p => p.Key).Select(p => p.Value).ToArray();
        retained.Clear();
        try
        {
            var weight = 1.0 / context.MetaBatchSize;
            traced = SumOverTasks([.. tasks.Select(t => new[] { t.Before, t.After })], weight, context);
            if (maxKl <= 0) return false;
            TrustRegionStep(tasks, context);
            return true;
        }
        finally
        {
            foreach (var t in tasks) t.Dispose();
        }
    }

    /// <summary>
    /// The trust-region step. Every sum over tasks (the gradient, each Fisher-vector product, the
    /// line search's loss and KL) is taken over the whole meta-batch in task order, from the tasks'
    /// own values gathered from the ranks: conjugate gradient on a nearly singular Fisher matrix
    /// turns a last-bit difference in a product (ranks summing their halves first) into a visibly
    /// different step, so only sums that round alike at any process count keep two processes
    /// equal to one.
    /// </summary>
    private void TrustRegionStep(Retained[] tasks, OuterStepContext context)
    {
        var weight = 1.0 / context.MetaBatchSize;
        var g = SumOverTasks([.. tasks.Select(t => t.Gradient)], 1, context);
        // ∇θ KL(π_old ‖ π_θ'(θ)) for each task, kept with its graph: each Fisher-vector product differentiates it once more.
        var klGrads = new Tensor[tasks.Length][];
        TaskWorkers.ForEach(tasks.Length, context.Workers, i =>
        {
            var t = tasks[i];
            var fast = Adapt(t.Support, createGraph: !firstOrder);
            var kl = PolicyGradient.Kl(t.OldMean!, t.OldLogStd!, Mean(t.Query!.Observations, fast), fast[^1]).Mean();
            klGrads[i] = [.. Torch.Grad([kl], parameters, createGraph: true).Select(x => x!.DetachFromScope())];
        });
        try
        {
            double[] FisherProduct(double[] v)
            {
                var perTask = new double[tasks.Length][];
                TaskWorkers.ForEach(tasks.Length, context.Workers, i =>
                {
                    var vs = Unflatten(v);
                    Tensor dot = (klGrads[i][0] * vs[0]).Sum();
                    for (var k = 1; k < vs.Length; k++) dot = dot + (klGrads[i][k] * vs[k]).Sum();
                    perTask[i] = Flatten(Torch.Grad([dot], parameters, retainGraph: true));
                });
                var fv = SumOverTasks(perTask, weight, context);
                for (var k = 0; k < fv.Length; k++) fv[k] += Trpo.CgDamping * v[k];
                return fv;
            }

            var s = Trpo.ConjugateGradient(FisherProduct, g);
            var full = Trpo.FullStep(s, FisherProduct(s), maxKl);
            var old = Flatten(parameters);
            (double Loss, double Kl) At(double fraction)
            {
                Assign([.. old.Select((p, k) => p - fraction * full[k])]);
                var per = new double[tasks.Length][];
                TaskWorkers.ForEach(tasks.Length, context.Workers, i =>
                {
                    var t = tasks[i];
                    var fast = Adapt(t.Support, createGraph: false);
                    using var noGrad = Torch.NoGrad();
                    var mean = Mean(t.Query!.Observations, fast);
                    var ratio = (PolicyGradient.LogProb(t.Query.Actions, mean, fast[^1]) - t.OldLogProb!).Exp();
                    per[i] = [-(ratio * t.Query.Advantages).Mean().Item(), PolicyGradient.Kl(t.OldMean!, t.OldLogStd!, mean, fast[^1]).Mean().Item()];
                });
                var total = SumOverTasks(per, weight, context);
                return (total[0], total[1]);
            }
            var before = At(0).Loss;
            if (Trpo.LineSearch(At, before, maxKl) == null) Assign(old);
        }
        finally
        {
            foreach (var gs in klGrads) if (gs != null) foreach (var x in gs) x.Dispose();
        }
    }

    /// <summary>
    /// Σ weight · v over the whole meta-batch's tasks in task order, from this rank's tasks' vectors
    /// (all of one length) and the other ranks' gathered: the same additions in the same order at
    /// any process count. By hand: an all-reduce sums the ranks' partial sums, in another order.
    /// </summary>
    private static double[] SumOverTasks(double[][] mine, double weight, OuterStepContext context)
    {
        var length = mine.Length > 0 ? mine[0].Length : 0;
        // Every rank holds at least one task (MetaIteration refuses fewer tasks than ranks), so the length is known everywhere.
        var all = context.Gather([.. mine.SelectMany(v => v)]);
        var sum = new double[length];
        for (var offset = 0; offset < all.Length; offset += length)
            for (var k = 0; k < length; k++) sum[k] += weight * all[offset + k];
        return sum;
    }

    private double[] Flatten(IReadOnlyList<Tensor?> tensors)
    {
        var flat = new List<double>();
        for (var i = 0; i < parameters.Length; i++)
        {
            if (tensors[i] is { } t) flat.AddRange(t.Detach().To(ScalarType.Float64).Reshape(-1).ToArray<double>());
            else flat.AddRange(new double[parameters[i].NumElements]);
        }
        return [.. flat];
    }

    private Tensor[] Unflatten(double[] flat)
    {
        var result = new Tensor[parameters.Length];
        var offset = 0;
        for (var i = 0; i < parameters.Length; i++)
        {
            var n = (int)parameters[i].NumElements;
            result[i] = Torch.From(flat.AsSpan(offset, n).ToArray().Select(x => (float)x).ToArray(), parameters[i].Shape);
            offset += n;
        }
        return result;
    }

    private void Assign(double[] flat)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        var values = Unflatten(flat);
        for (var i = 0; i < parameters.Length; i++) parameters[i].CopyFrom(values[i]);
    }

    public IReadOnlyList<Trajectories> AdaptationRollouts(Episode task, int steps, int count, double firstLr, double laterLr)
    {
        var rollouts = new List<Trajectories>();
        IReadOnlyList<Tensor> fast = parameters;
        for (var s = 0; ; s++)
        {
            var d = Rollout(task, s, count, fast);
            rollouts.Add(d);
            if (s == steps) return rollouts;
            using var batch = PolicyGradient.Batch(d);
            fast = [.. Step(fast, batch, s == 0 ? firstLr : laterLr, createGraph: false).Select(w => w.Detach().RequiresGrad_())];
        }
    }

    /// <summary>Validation's score: the negative average return after test_inner_steps steps of size inner_lr.</summary>
    public TaskScore Evaluate(Episode task)
    {
        var r = AdaptationRollouts(task, testInnerSteps, trajectories, innerLr, innerLr);
        return new TaskScore(-r[^1].AverageReturn(), double.NaN);
    }

    public AdaptedTask AdaptTo(Episode task) =>
        throw new ConfigException("algorithm.name: a meta-RL policy adapts by acting in its environment, not to a support folder; score it with metarun eval RUN");

    public Func<Tensor, Tensor> Predictor(Episode task) =>
        throw new ConfigException("algorithm.name: a meta-RL policy has no labelled query set to attack; score it with metarun eval RUN");

    public void Dispose()
    {
        foreach (var t in retained.Values) t.Dispose();
        retained.Clear();
        logStd.Dispose();
        model.Dispose();
    }
}
