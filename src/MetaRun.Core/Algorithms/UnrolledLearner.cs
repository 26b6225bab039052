using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// The support set as the inner steps read it: its examples and labels, and for a learner whose
/// steps read something computed once from θ before the loop (ANIL's body features), that tensor.
/// </summary>
public sealed record InnerData(Tensor X, Tensor Y, Tensor? Features = null);

/// <summary>
/// A fast-weight learner whose outer gradient flows back through its unrolled inner loop (MAML,
/// FOMAML, MAML++, Meta-SGD, ANIL, ALFA, ADML, Alpha MAML). Each writes one inner step,
///   φ_(s+1) = Step_s(φ_s; support, its own learned rates)      (φ_0 = θ),
/// and this class unrolls it. With algorithm.checkpoint_inner_steps the outer gradient is taken
/// without keeping the steps' activations: the forward pass keeps only the fast weights
/// φ_0..φ_k (detached copies; only every ⌈√k⌉-th is kept, the others are recomputed without a graph
/// when needed), and the backward pass goes step by step, j = k..1, recomputing
/// φ_j from a leaf copy of φ_(j−1) (with the inner gradient's graph when second order) and pulling
/// the adjoint back, v_(j−1) = (∂φ_j/∂φ_(j−1))ᵀ v_j, while adding (∂φ_j/∂ψ)ᵀ v_j to the gradient of
/// every outer parameter ψ the step reads directly (learned rates, per-step batch norm) and to the
/// adjoint of the support features. Finally v_0 (and the features' adjoint) flow into θ. The
/// gradient is the plain path's up to summation order; memory is one step's graph plus about 2√k
/// parameter copies instead of k steps' graphs, for about two more inner loops of compute (one
/// with a graph, the recomputation the backward pass differentiates, and one without).
/// (Written here rather than as a custom autograd function, which the binding does not offer:
/// autograd.grad with grad_outputs is the vector-Jacobian product each backward step needs.)
/// </summary>
public abstract class UnrolledLearner(IModel model, Objective objective, int innerSteps, int testInnerSteps)
    : FastWeightLearner(model, objective, innerSteps, testInnerSteps)
{
    /// <summary>algorithm.checkpoint_inner_steps: recompute inner steps in the backward pass instead of keeping their activations.</summary>
    public bool CheckpointInnerSteps { get; init; }

    /// <summary>Inner step <paramref name="step"/> (0-based): the fast weights after it from <paramref name="fast"/>, in the model's parameter order; an entry the step leaves unchanged may be returned as the same tensor.</summary>
    protected abstract IReadOnlyList<Tensor> Step(InnerData support, int step, IReadOnlyList<Tensor> fast, bool createGraph);

    /// <summary>What the steps read of the support set; <paramref name="initial"/> are the weights before the first step.</summary>
    protected virtual InnerData Prepare(Tensor x, Tensor y, IReadOnlyList<Tensor> initial) => new(x, y);

    /// <summary>The weights a forward pass after step <paramref name="step"/> (0-based) uses: the fast weights, unless a learner swaps some per step (MAML++'s per-step batch norm).</summary>
    protected virtual IReadOnlyList<Tensor> AtStep(IReadOnlyList<Tensor> fast, int step) => fast;

    /// <summary>One plain gradient step on the support loss over all weights, weight i becoming update(i, w, ∇w).</summary>
    protected IReadOnlyList<Tensor> GradientStep(InnerData support, IReadOnlyList<Tensor> fast, bool createGraph, Func<int, Tensor, Tensor, Tensor> update)
    {
        using var once = FirstOrderPasses.Enter(!createGraph);
        var loss = Objective.Loss(Model.Forward(support.X, fast), support.Y);
        var grads = Torch.Grad([loss], fast, createGraph: createGraph);
        return fast.Select((w, i) => update(i, w, grads[i]!)).ToArray();
    }

    public override IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph) => Unroll(x, y, steps, createGraph);

    /// <summary>
    /// The inner loop with its graph (when <paramref name="createGraph"/>); after each step s calls
    /// <paramref name="afterStep"/> with the weights a forward pass at step s uses. Returns the last step's.
    /// </summary>
    protected IReadOnlyList<Tensor> Unroll(Tensor x, Tensor y, int steps, bool createGraph, Action<int, IReadOnlyList<Tensor>>? afterStep = null)
    {
        var fast = Model.WeightsFor(x);
        var support = Prepare(x, y, fast);
        for (var s = 0; s < steps; s++)
        {
            fast = Step(support, s, fast, createGraph);
            afterStep?.Invoke(s, AtStep(fast, s));
        }
        return AtStep(fast, steps - 1);
    }

    public override TaskGradient TaskGradient(Episode task, double weight) =>
        CheckpointInnerSteps ? CheckpointedGradient(task, weight) : base.TaskGradient(task, weight);

    /// <summary>
    /// <see cref="FastWeightLearner.OuterGradient"/> by checkpointing: the gradient of
    /// Σ_(j&lt;k) earlier[j−1] · L_query(φ_j) + finalWeight · L_query(φ_k), times <paramref name="weight"/>.
    /// </summary>
    protected TaskGradient CheckpointedGradient(Episode task, double weight, double[]? earlier = null, double finalWeight = 1)
    {
        Trajectory path;
        using (PhaseClock.Time("inner loop")) path = Record(task.SupportX, task.SupportY, InnerSteps);
        using var phase = PhaseClock.Time("outer gradient");
        var (output, adjoint, grads) = QueryGradient(task, path.Final, InnerSteps, weight * finalWeight);
        Func<int, IReadOnlyList<Tensor>, IReadOnlyList<Tensor?>>? extra = earlier == null ? null : (j, phi) =>
        {
            var (_, v, g) = QueryGradient(task, phi, j, weight * earlier[j - 1]);
            AddInto(grads, g);
            return v;
        };
        Backpropagate(path, adjoint, grads, SecondOrder, extra);
        // As OuterGradient reports: the final query's mean loss (unweighted) and accuracy.
        using var noGrad = Torch.NoGrad();
        var loss = Objective.Loss(output, task.QueryY);
        return new TaskGradient(grads, loss.Item() / Objective.Tasks(output), Objective.Accuracy(output, task.QueryY));
    }

    /// <summary>The query loss after step j (times <paramref name="scale"/>) differentiated at φ_j as a leaf: its output, its adjoint for φ_j and its gradient for the outer parameters it reads directly.</summary>
    private (Tensor Output, Tensor?[] Adjoint, Tensor?[] Outer) QueryGradient(Episode task, IReadOnlyList<Tensor> phi, int j, double scale)
    {
        // Its own scope: the query pass's activations are freed before the backward pass through the steps.
        using var scope = Torch.NewScope();
        var leaves = phi.Select(w => w.Detach().RequiresGrad_()).ToArray();
        using var once = FirstOrderPasses.Enter();
        var output = Model.Forward(task.QueryX, AtStep(leaves, j - 1));
        var all = Torch.Grad([Objective.Loss(output, task.QueryY) * scale], [.. leaves, .. OuterParameters], allowUnused: true);
        var kept = KeepOutside(all);
        using var noGrad = Torch.NoGrad();
        return (output.Detach().MoveToOuterScope(), kept[..leaves.Length], kept[leaves.Length..]);
    }

    /// <summary>
    /// An inner loop as the checkpointed backward pass needs it: the fast weights φ_j at the steps
    /// j in <paramref name="Marks"/> (0, every ⌈√k⌉-th step, and k) as constants, and the support
    /// data the steps read. The states between two marks are recomputed from the earlier one when
    /// the backward pass reaches them, so about 2√k parameter copies are held at once rather than k.
    /// </summary>
    protected sealed record Trajectory(IReadOnlyList<int> Marks, IReadOnlyList<IReadOnlyList<Tensor>> Saved, InnerData Support, Tensor X, Tensor Y)
    {
        /// <summary>φ_k, before <see cref="AtStep"/>.</summary>
        public IReadOnlyList<Tensor> Final => Saved[^1];
    }

    /// <summary>Runs <paramref name="steps"/> inner steps keeping only the marked fast weights: each step's graph is freed before the next.</summary>
    protected Trajectory Record(Tensor x, Tensor y, int steps)
    {
        IReadOnlyList<Tensor> phi;
        InnerData support;
        using (Torch.NoGrad())
        {
            phi = [.. Model.WeightsFor(x).Select(w => w.Detach())];
            support = Prepare(x, y, phi);
        }
        var every = Math.Max(1, (int)Math.Ceiling(Math.Sqrt(steps)));
        var marks = new List<int> { 0 };
        var saved = new List<IReadOnlyList<Tensor>> { phi };
        for (var s = 0; s < steps; s++)
        {
            var next = Advance(support, s, phi);
            if (!saved.Contains(phi)) Release(phi, next, saved);
            phi = next;
            if ((s + 1) % every == 0 || s + 1 == steps)
            {
                marks.Add(s + 1);
                saved.Add(phi);
            }
        }
        return new Trajectory(marks, saved, support, x, y);
    }

    /// <summary>Inner step s without a graph: the changed weights as new constants in the current scope, the unchanged ones the same tensors.</summary>
    private IReadOnlyList<Tensor> Advance(InnerData support, int s, IReadOnlyList<Tensor> before)
    {
        using var scope = Torch.NewScope();
        var leaves = before.Select(w => w.Detach().RequiresGrad_()).ToArray();
        var after = Step(support, s, leaves, createGraph: false);
        return [.. after.Select((w, i) => ReferenceEquals(w, leaves[i]) ? before[i] : w.Detach().MoveToOuterScope())];
    }

    /// <summary>Frees the tensors of a state no longer needed, except those <paramref name="next"/> or a saved state still holds.</summary>
    private static void Release(IReadOnlyList<Tensor> state, IReadOnlyList<Tensor> next, IReadOnlyList<IReadOnlyList<Tensor>> saved)
    {
        for (var i = 0; i < state.Count; i++)
            if (!ReferenceEquals(state[i], next[i]) && !saved.Any(t => ReferenceEquals(t[i], state[i]))) state[i].Dispose();
    }

    /// <summary>
    /// Adds to <paramref name="outer"/> (the outer parameters' gradients) what flows back from the
    /// adjoint <paramref name="final"/> of φ_k through the inner loop into θ and the steps' own
    /// parameters; <paramref name="extra"/>(j, φ_j) may add an adjoint for an intermediate φ_j
    /// (0 &lt; j &lt; k), e.g. from its own query loss. Each step's recomputed graph is freed before the next.
    /// </summary>
    protected void Backpropagate(Trajectory path, IReadOnlyList<Tensor?> final, Tensor?[] outer, bool secondOrder,
        Func<int, IReadOnlyList<Tensor>, IReadOnlyList<Tensor?>>? extra = null)
    {
        var v = final.ToArray();
        var ownsV = false;
        Tensor? featureAdjoint = null;
        var n = v.Length;
        void Take(Tensor?[] next)
        {
            if (ownsV) foreach (var t in v) t?.Dispose();
            (v, ownsV) = (next, true);
        }
        var k = path.Marks[^1];
        for (var m = path.Marks.Count - 1; m >= 1; m--)
        {
            // φ_a..φ_(b−1) of the segment between two marks, recomputed from φ_a.
            var (a, b) = (path.Marks[m - 1], path.Marks[m]);
            var segment = new List<IReadOnlyList<Tensor>> { path.Saved[m - 1] };
            for (var t = a; t < b - 1; t++) segment.Add(Advance(path.Support, t, segment[^1]));
            for (var j = b; j > a; j--)
                StepBack(j, j == b ? path.Saved[m] : segment[j - a], segment[j - 1 - a]);
            for (var t = segment.Count - 1; t >= 1; t--) Release(segment[t], segment[t - 1], path.Saved);
        }
        FlowIntoTheta(path, v, featureAdjoint, outer);
        if (ownsV) foreach (var t in v) t?.Dispose();
        featureAdjoint?.Dispose();

        void StepBack(int j, IReadOnlyList<Tensor> phi, IReadOnlyList<Tensor> before)
        {
            if (extra != null && j < k)
                using (Torch.NewScope())
                    Take(KeepOutside(Sum(v, extra(j, phi))));
            using (Torch.NewScope())
            {
                var leaves = before.Select(w => w.Detach().RequiresGrad_()).ToArray();
                var features = path.Support.Features?.Detach().RequiresGrad_();
                var after = Step(path.Support with { Features = features }, j - 1, leaves, createGraph: secondOrder);
                var previous = new Tensor?[n];
                var outputs = new List<Tensor>();
                var seeds = new List<Tensor>();
                for (var i = 0; i < n; i++)
                {
                    if (v[i] is not { } vi) continue;
                    // An unchanged weight passes its adjoint straight through (it may also feed the others).
                    if (ReferenceEquals(after[i], leaves[i])) previous[i] = vi;
                    else if (after[i].RequiresGrad) { outputs.Add(after[i]); seeds.Add(vi); }
                }
                if (outputs.Count > 0)
                {
                    IReadOnlyList<Tensor> inputs = features == null ? [.. leaves, .. OuterParameters] : [.. leaves, features, .. OuterParameters];
                    var g = Torch.Grad(outputs, inputs, seeds, allowUnused: true);
                    previous = Sum(previous, g[..n]);
                    if (features != null) featureAdjoint = AddKept(featureAdjoint, g[n]);
                    AddInto(outer, g[(features == null ? n : n + 1)..]);
                }
                Take(KeepOutside(previous));
            }
        }
    }

    /// <summary>The adjoints of φ_0 = WeightsFor(x) (θ itself for one task, θ broadcast over a meta-batch's tasks) and of the support features, pulled back into the outer parameters.</summary>
    private void FlowIntoTheta(Trajectory path, Tensor?[] v0, Tensor? featureAdjoint, Tensor?[] outer)
    {
        using var scope = Torch.NewScope();
        var initial = Model.WeightsFor(path.X);
        var outputs = new List<Tensor>();
        var seeds = new List<Tensor>();
        var direct = new Tensor?[outer.Length];
        for (var i = 0; i < v0.Length; i++)
        {
            if (v0[i] is not { } vi) continue;
            var p = IndexOf(OuterParameters, initial[i]);
            if (p >= 0) direct[p] = direct[p] is { } d ? d + vi : vi;
            else if (initial[i].RequiresGrad) { outputs.Add(initial[i]); seeds.Add(vi); }
        }
        if (featureAdjoint != null)
        {
            var features = Prepare(path.X, path.Y, initial).Features!;
            if (features.RequiresGrad) { outputs.Add(features); seeds.Add(featureAdjoint); }
        }
        AddInto(outer, direct);
        if (outputs.Count > 0) AddInto(outer, Torch.Grad(outputs, OuterParameters, seeds, allowUnused: true));
    }

    private static int IndexOf(IReadOnlyList<Tensor> list, Tensor t)
    {
        for (var i = 0; i < list.Count; i++) if (ReferenceEquals(list[i], t)) return i;
        return -1;
    }

    /// <summary>Entrywise sum, a null entry counting as zero (new tensors, in the current scope).</summary>
    private static Tensor?[] Sum(IReadOnlyList<Tensor?> a, IReadOnlyList<Tensor?> b)
    {
        using var noGrad = Torch.NoGrad();
        return [.. a.Select((x, i) => x is null ? b[i] : b[i] is { } y ? x + y : x)];
    }

    /// <summary>Copies of the tensors owned by the scope enclosing the current one.</summary>
    private static Tensor?[] KeepOutside(IReadOnlyList<Tensor?> ts)
    {
        using var noGrad = Torch.NoGrad();
        return [.. ts.Select(t => t?.Detach().MoveToOuterScope())];
    }

    private static Tensor AddKept(Tensor? sum, Tensor? g)
    {
        if (g == null) return sum!;
        using var noGrad = Torch.NoGrad();
        if (sum == null) return g.Detach().Clone().MoveToOuterScope();
        sum.Add_(g);
        return sum;
    }

    /// <summary>Adds <paramref name="g"/> into the running sums <paramref name="sums"/>, which live in the scope enclosing the current one (or the current one when there is none open inside the caller's).</summary>
    private static void AddInto(Tensor?[] sums, IReadOnlyList<Tensor?> g)
    {
        using var noGrad = Torch.NoGrad();
        for (var i = 0; i < sums.Length; i++)
        {
            if (g[i] is not { } gi) continue;
            if (sums[i] == null) sums[i] = gi.Detach().Clone().MoveToOuterScope();
            else sums[i]!.Add_(gi);
        }
    }
}
