using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Implicit MAML (Rajeswaran, Finn, Kakade and Levine 2019, Algorithms 1 and 2). For each task:
///   φ ≈ argmin_φ' L_support(φ') + (λ/2)‖φ' − θ‖²   (inner_steps of gradient descent from φ = θ,
///       φ ← φ − α (∇L_support(φ) + λ(φ − θ)), each step a constant: no graph is kept)
///   g = ∇φ L_query(φ)
///   v ≈ (I + H/λ)⁻¹ g,  H = ∇²φ L_support(φ)        (cg_steps of conjugate gradient on
///       Hessian-vector products: a double backward through the support loss at φ alone)
/// and the outer step descends mean_i v_i, the implicit meta-gradient dL_query(φ_i)/dθ. Memory
/// does not grow with inner_steps: only φ and one support pass at φ are ever differentiated.
/// Evaluation adapts by the same proximal inner problem. The paper assumes I + H/λ positive
/// definite (H ≻ −λI); where a direction of curvature ≤ 0 shows up, CG stops at the iterate before
/// it, as truncated CG in Hessian-free optimization does. With few support examples (and batch
/// norm) H has eigenvalues far below −λ, so CG stops early and solves little: cg_damping d then
/// solves the damped system (I + H/(λ + d))v = g instead, as the authors' released code does
/// (its (1 + c)v + Hv/(λ + λ_d) is ours up to a scale the outer optimizer's step absorbs). Traced: cg_residual, the largest
/// ‖(I + H/λ)v − g‖ / ‖g‖ among the iteration's tasks (of this process's tasks with --nproc),
/// so a run shows whether CG converged.
/// </summary>
public sealed class Imaml(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, double lambda, int cgSteps, double cgDamping = 0)
    : FastWeightLearner(model, objective, innerSteps, testInnerSteps), ITracesHyperparameters, IIterationAware
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Imaml From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.ImamlLambda, c.Config.CgSteps, c.Config.CgDamping);

    /// <summary>Where CG stops early: a residual this small is float32 rounding noise in the products.</summary>
    private const double CgTolerance = 1e-20;

    private readonly Lock gate = new();
    private double worstResidual = double.NaN;

    /// <summary>
    /// φ after <paramref name="steps"/> gradient steps on the proximal problem, as constants (they
    /// do not require grad) whatever <paramref name="createGraph"/> says: the implicit gradient never
    /// differentiates through the inner loop. Each step's tensors are freed before the next.
    /// </summary>
    public override IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph)
    {
        Tensor[] theta;
        using (Torch.NoGrad()) theta = [.. Model.WeightsFor(x).Select(w => w.Detach())];
        var phi = theta;
        for (var s = 0; s < steps; s++)
        {
            Tensor[] next;
            using (Torch.NewScope())
            {
                var leaves = phi.Select(w => w.Detach().RequiresGrad_()).ToArray();
                var grads = Torch.Grad([Objective.Loss(Model.Forward(x, leaves), y)], leaves, allowUnused: true);
                using var noGrad = Torch.NoGrad();
                next = [.. leaves.Select((w, i) => (grads[i] is { } g ? w - innerLr * (g + lambda * (w - theta[i])) : w - innerLr * lambda * (w - theta[i])).MoveToOuterScope())];
            }
            if (s > 0) foreach (var w in phi) w.Dispose();
            phi = next;
        }
        return phi;
    }

    public override TaskGradient TaskGradient(Episode task, double weight)
    {
        IReadOnlyList<Tensor> phi;
        using (PhaseClock.Time("inner loop")) phi = Adapt(task.SupportX, task.SupportY, InnerSteps, createGraph: false);
        using var phase = PhaseClock.Time("outer gradient");
        var batched = Model.IsMetaBatch(task.SupportX);
        var tasks = batched ? (int)task.SupportX.Size(0) : 1;
        var leaves = phi.Select(w => w.Detach().RequiresGrad_()).ToArray();
        var output = Model.Forward(task.QueryX, leaves);
        var loss = Objective.Loss(output, task.QueryY);
        var g = Torch.Grad([loss], leaves, allowUnused: true);
        // ∇φ L_support kept with its graph: each Hessian-vector product differentiates it once more.
        var supportGrad = Torch.Grad([Objective.Loss(Model.Forward(task.SupportX, leaves), task.SupportY)], leaves, createGraph: true, allowUnused: true);

        double[] Product(double[] v)
        {
            using var scope = Torch.NewScope();
            var vs = Unflatten(v, leaves, tasks);
            Tensor? dot = null;
            for (var k = 0; k < leaves.Length; k++)
                if (supportGrad[k] is { } sg && sg.RequiresGrad) dot = dot is null ? (sg * vs[k]).Sum() : dot + (sg * vs[k]).Sum();
            var hv = dot is null ? new double[v.Length] : Flatten(Torch.Grad([dot], leaves, retainGraph: true, allowUnused: true), leaves, tasks);
            for (var k = 0; k < v.Length; k++) hv[k] = v[k] + hv[k] / (lambda + cgDamping);
            return hv;
        }

        var (x, residuals) = ConjugateGradient.Solve(Product, Flatten(g, leaves, tasks), cgSteps, CgTolerance, tasks);
        lock (gate) worstResidual = residuals.Append(double.IsNaN(worstResidual) ? 0 : worstResidual).Max();
        var implicitGrad = Unflatten(x, leaves, tasks);
        // θ was shared by a meta-batch's tasks: its gradient is the sum of theirs.
        var grads = implicitGrad.Select(v => (Tensor?)((batched ? v.Sum(0) : v) * weight)).ToArray();
        return new TaskGradient(grads, loss.Item() / Objective.Tasks(output), Objective.Accuracy(output, task.QueryY));
    }

    /// <summary>Tensors shaped like <paramref name="like"/> (a task dimension in front when batched) as one task-major float64 vector; null reads as zeros.</summary>
    private static double[] Flatten(IReadOnlyList<Tensor?> tensors, IReadOnlyList<Tensor> like, int tasks)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        var rows = like.Select((w, i) => (tensors[i] ?? Torch.Zeros(w.Shape, w.DType, w.Device)).Detach().Reshape(tasks, -1)).ToArray();
        return Torch.Cat(rows, 1).To(ScalarType.Float64).Contiguous().ToArray<double>();
    }

    private static Tensor[] Unflatten(double[] flat, IReadOnlyList<Tensor> like, int tasks)
    {
        using var noGrad = Torch.NoGrad();
        var all = Torch.From(flat, tasks, flat.Length / tasks).To(like[0].Device, like[0].DType);
        var result = new Tensor[like.Count];
        long offset = 0;
        for (var i = 0; i < like.Count; i++)
        {
            var n = like[i].NumElements / tasks;
            result[i] = all.Narrow(1, offset, n).Reshape(like[i].Shape);
            offset += n;
        }
        return result;
    }

    public void SetIteration(long iteration)
    {
        lock (gate) worstResidual = double.NaN;
    }

    public IReadOnlyList<string> TracedNames => ["cg_residual"];

    public IReadOnlyList<double> Traced()
    {
        lock (gate) return [worstResidual];
    }
}
