using LibTorch;
using MetaRun.Config;
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
public sealed class MamlPlusPlus : UnrolledLearner, IIterationAware
{
    /// <summary>The paper's floor for the weight of a step other than the last: 0.03 / steps.</summary>
    private const double MinNonFinal = 0.03;

    private readonly double innerLr;
    private readonly int multiStepIterations, firstOrderIterations;
    private readonly bool multiStepLoss, firstOrder;
    private readonly Tensor[]? lslr;           // per parameter: [steps]
    private readonly Tensor[][]? stepBn;       // per step: the batch-norm weights in bnIndex order
    private readonly int[] bnIndex;            // positions of the batch-norm weights in the model's parameters (per-step BN only)
    private readonly int[] adapted;            // positions of the weights the inner loop updates
    private long iteration = 1;

    public MamlPlusPlus(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, bool firstOrder,
        bool multiStepLoss, int multiStepIterations, bool lslr, bool perStepBn, int firstOrderIterations)
        : base(model, objective, innerSteps, testInnerSteps)
    {
        this.innerLr = innerLr;
        (this.firstOrder, this.multiStepLoss, this.multiStepIterations, this.firstOrderIterations) = (firstOrder, multiStepLoss, multiStepIterations, firstOrderIterations);
        var steps = Math.Max(1, Math.Max(innerSteps, testInnerSteps));
        bnIndex = perStepBn ? model.IndicesOf(ParameterRole.BatchNorm) : [];
        // Per-step batch-norm weights are not adapted: they are already step-specific.
        adapted = Enumerable.Range(0, model.Parameters.Count).Where(i => !bnIndex.Contains(i)).ToArray();
        var names = new List<string>();
        var parameters = new List<Tensor>();
        foreach (var i in adapted)
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

    /// <summary>The registry's constructor: the switches from the config.</summary>
    public static MamlPlusPlus From(AlgorithmContext c, bool firstOrder)
    {
        var a = c.Config;
        return new MamlPlusPlus(c.Model, c.Objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, firstOrder,
            a.MultiStepLoss, a.MultiStepLossIterations, a.Lslr, a.PerStepBn, a.FirstOrderIterations) { CheckpointInnerSteps = a.CheckpointInnerSteps };
    }

    /// <summary>Whether any MAML++ switch is on (with all off, maml stays the plain, bit-identical Maml).</summary>
    public static bool AnySwitch(AlgorithmConfig a) => a.MultiStepLoss || a.Lslr || a.PerStepBn || a.FirstOrderIterations > 0;

    public override IReadOnlyList<Tensor> OuterParameters { get; }
    public override IReadOnlyList<string> OuterParameterNames { get; }

    public void SetIteration(long iteration) => Volatile.Write(ref this.iteration, iteration);

    protected override bool SecondOrder => !firstOrder && Volatile.Read(ref iteration) > firstOrderIterations;

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
    protected override IReadOnlyList<Tensor> AtStep(IReadOnlyList<Tensor> fast, int s)
    {
        if (stepBn == null) return fast;
        var w = fast.ToArray();
        var bn = stepBn[Math.Clamp(s, 0, stepBn.Length - 1)];
        for (var j = 0; j < bnIndex.Length; j++) w[bnIndex[j]] = bn[j];
        return w;
    }

    protected override IReadOnlyList<Tensor> Step(InnerData support, int s, IReadOnlyList<Tensor> fast, bool createGraph)
    {
        using var once = FirstOrderPasses.Enter(!createGraph);
        var loss = Objective.Loss(Model.Forward(support.X, AtStep(fast, s)), support.Y);
        var grads = Torch.Grad([loss], adapted.Select(i => fast[i]).ToArray(), createGraph: createGraph);
        var next = fast.ToArray();
        for (var k = 0; k < adapted.Length; k++)
        {
            var i = adapted[k];
            next[i] = LearnedRate(i, s) is { } rate ? fast[i] - rate * grads[k]! : fast[i] - innerLr * grads[k]!;
        }
        return next;
    }

    /// <summary>With the multi-step loss on, the outer objective is the list of every step's query loss with its weight v_s.</summary>
    public override TaskGradient TaskGradient(Episode task, double weight)
    {
        var it = Volatile.Read(ref iteration);
        if (!(multiStepLoss && it <= multiStepIterations && InnerSteps > 1)) return base.TaskGradient(task, weight);
        var v = StepLossWeights(InnerSteps, it, multiStepIterations);
        if (CheckpointInnerSteps) return CheckpointedGradient(task, weight, v[..^1], finalWeight: v[^1]);
        var earlier = new List<WeightedLoss>();
        IReadOnlyList<Tensor> fast;
        using (PhaseClock.Time("inner loop"))
            fast = Unroll(task.SupportX, task.SupportY, InnerSteps, SecondOrder, (s, w) =>
            {
                // The last step's query loss is the final term, added by OuterGradient.
                if (s < InnerSteps - 1) earlier.Add(new WeightedLoss(Objective.Loss(Model.Forward(task.QueryX, w), task.QueryY), v[s]));
            });
        return OuterGradient(task, fast, weight, earlier, finalWeight: v[^1]);
    }
}
