using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// MAML with the MAML++ options of Antoniou, Edwards and Storkey 2019 ("How to train your
/// MAML"), each a switch; with all off it is MAML. (Cosine annealing of β is the trainer's
/// algorithm.outer_lr_schedule: cosine.)
///   multi-step loss (MSL): L_i = Σ_s v_s(t) L_query(f_θ_s) over the inner steps s, with v
///     annealed from uniform toward the last step, so early training gets gradient through
///     every step and late training optimizes what is evaluated: the last step.
///   derivative-order annealing (DA): first order for the first N iterations (cheap and
///     stable), second order after.
///   LSLR: a learned inner learning rate per layer (weight tensor) and per step, α_(p, s).
///   per-step BN weights (BNWB): batch-norm weights and biases of their own for every inner
///     step, learned in the outer loop only. The paper's per-step running statistics (BNRS) are
///     not needed: our batch norm always normalizes with the current batch's statistics.
/// </summary>
public sealed class MamlPlusPlus : IMetaLearner, IIterationAware
{
    /// <summary>The paper's floor for the weight of a step other than the last: 0.03 / steps.</summary>
    private const double MinNonFinal = 0.03;

    private readonly IModel model;
    private readonly Objective objective;
    private readonly double innerLr;
    private readonly int innerSteps, testInnerSteps, multiStepIterations, firstOrderIterations;
    private readonly bool multiStepLoss, firstOrder;
    private readonly Tensor[]? lslr;           // per parameter: [steps]
    private readonly Tensor[][]? stepBn;       // per step: the batch-norm weights in bnIndex order
    private readonly int[] bnIndex;            // positions of batch-norm weights in the model's parameters
    private readonly List<Tensor> own = [];
    private long iteration = 1;

    public MamlPlusPlus(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, bool firstOrder,
        bool multiStepLoss, int multiStepIterations, bool lslr, bool perStepBn, int firstOrderIterations)
    {
        (this.model, this.objective, this.innerLr, this.innerSteps, this.testInnerSteps) = (model, objective, innerLr, innerSteps, testInnerSteps);
        (this.firstOrder, this.multiStepLoss, this.multiStepIterations, this.firstOrderIterations) = (firstOrder, multiStepLoss, multiStepIterations, firstOrderIterations);
        var steps = Math.Max(1, Math.Max(innerSteps, testInnerSteps));
        var names = new List<string>();
        var parameters = new List<Tensor>();
        bnIndex = perStepBn ? model.ParameterNames.Select((n, i) => (n, i)).Where(p => p.n.Contains(".bn.", StringComparison.Ordinal)).Select(p => p.i).ToArray() : [];
        for (var i = 0; i < model.Parameters.Count; i++)
            if (!bnIndex.Contains(i))
            {
                parameters.Add(model.Parameters[i]);
                names.Add(model.ParameterNames[i]);
            }
        if (lslr)
        {
            this.lslr = model.Parameters.Select(p => Own(Torch.Full([steps], innerLr, p.DType, p.Device))).ToArray();
            parameters.AddRange(this.lslr);
            names.AddRange(model.ParameterNames.Select(n => "lslr." + n));
        }
        if (perStepBn)
        {
            stepBn = new Tensor[steps][];
            for (var s = 0; s < steps; s++)
            {
                stepBn[s] = bnIndex.Select(i => Own(model.Parameters[i].Detach().Clone())).ToArray();
                parameters.AddRange(stepBn[s]);
                names.AddRange(bnIndex.Select(i => $"bn_step{s}.{model.ParameterNames[i]}"));
            }
        }
        OuterParameters = parameters;
        OuterParameterNames = names;
    }

    private Tensor Own(Tensor t)
    {
        t = t.DetachFromScope().RequiresGrad_();
        own.Add(t);
        return t;
    }

    public IReadOnlyList<Tensor> OuterParameters { get; }
    public IReadOnlyList<string> OuterParameterNames { get; }

    public void SetIteration(long iteration) => Volatile.Write(ref this.iteration, iteration);

    /// <summary>
    /// MSL weights v_1..v_S at a 1-based iteration, as the paper's code: start at 1/S each; the
    /// non-final ones fall linearly to 0.03/S over <paramref name="annealIterations"/>, the final
    /// one rises to 1 − (S−1)·0.03/S (per iteration here where the code steps per epoch).
    /// </summary>
    public static double[] StepLossWeights(int steps, long iteration, long annealIterations)
    {
        var v = new double[steps];
        var decay = 1.0 / steps / annealIterations;
        var t = iteration - 1;
        var floor = MinNonFinal / steps;
        for (var s = 0; s < steps - 1; s++) v[s] = Math.Max(1.0 / steps - t * decay, floor);
        v[steps - 1] = Math.Min(1.0 / steps + t * (steps - 1) * decay, 1 - (steps - 1) * floor);
        return v;
    }

    /// <summary>The inner rate of parameter p at 0-based step s: learned (LSLR) or the fixed α.</summary>
    public Tensor? LearnedRate(int p, int s) => lslr?[p][Math.Min(s, (int)lslr[p].Size(0) - 1)];

    /// <summary>The weights a forward pass at step s uses: the fast weights, with step s's batch-norm weights.</summary>
    private IReadOnlyList<Tensor> AtStep(IReadOnlyList<Tensor> fast, int s)
    {
        if (stepBn == null) return fast;
        var w = fast.ToArray();
        var bn = stepBn[Math.Clamp(s, 0, stepBn.Length - 1)];
        for (var j = 0; j < bnIndex.Length; j++) w[bnIndex[j]] = bn[j];
        return w;
    }

    /// <summary>
    /// Inner loop; after each step s (0-based) calls <paramref name="afterStep"/> with the fast
    /// weights as a forward pass at step s uses them. Returns the final fast weights.
    /// </summary>
    public IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph, Action<int, IReadOnlyList<Tensor>>? afterStep = null)
    {
        IReadOnlyList<Tensor> fast = model.Parameters;
        // Per-step batch-norm weights are not adapted: they are already step-specific.
        var adapted = Enumerable.Range(0, fast.Count).Where(i => !bnIndex.Contains(i)).ToArray();
        for (var s = 0; s < steps; s++)
        {
            var loss = objective.Loss(model.Forward(x, AtStep(fast, s)), y);
            var grads = Torch.Grad([loss], adapted.Select(i => fast[i]).ToArray(), createGraph: createGraph);
            var next = fast.ToArray();
            for (var k = 0; k < adapted.Length; k++)
            {
                var i = adapted[k];
                next[i] = LearnedRate(i, s) is { } rate ? fast[i] - rate * grads[k]! : fast[i] - innerLr * grads[k]!;
            }
            fast = next;
            afterStep?.Invoke(s, AtStep(fast, s));
        }
        return AtStep(fast, steps - 1);
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        var it = Volatile.Read(ref iteration);
        var secondOrder = !firstOrder && it > firstOrderIterations;
        var msl = multiStepLoss && it <= multiStepIterations && innerSteps > 1;
        var v = msl ? StepLossWeights(innerSteps, it, multiStepIterations) : null;
        Tensor? total = null;
        IReadOnlyList<Tensor> fast;
        using (PhaseClock.Time("inner loop"))
            fast = Adapt(task.SupportX, task.SupportY, innerSteps, secondOrder, v == null ? null : (s, w) =>
            {
                if (s == innerSteps - 1) return;  // the last step's loss is added below
                var l = objective.Loss(model.Forward(task.QueryX, w), task.QueryY) * v[s];
                total = total == null ? l : total + l;
            });
        return FastWeights.OuterGradient(model, objective, task, fast, OuterParameters, weight,
            loss => v == null ? loss : total == null ? loss * v[^1] : total + loss * v[^1]);
    }

    public TaskScore Evaluate(Episode task)
    {
        var fast = Adapt(task.SupportX, task.SupportY, testInnerSteps, createGraph: false);
        return FastWeights.Score(model, objective, task, fast);
    }

    public void Dispose()
    {
        foreach (var t in own) t.Dispose();
        model.Dispose();
    }
}
