using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>One term of an outer objective: a query loss and its weight (MAML++'s multi-step loss has one per inner step).</summary>
public readonly record struct WeightedLoss(Tensor Loss, double Weight);

/// <summary>
/// The shell every fast-weight learner shares (MAML, FOMAML, ANIL, Meta-SGD, MAML++, ALFA, and
/// Reptile, which replaces the outer gradient but adapts and scores the same way), so each of
/// those files holds only its inner update. For a task:
///   θ' ← Adapt(θ, support)                   (the algorithm's inner loop)
///   ∇ ← ∂/∂(outer parameters) L_query(f_θ')  (through the inner loop when it kept its graph)
/// Evaluation adapts with the test step count, without a graph, and scores the query set.
/// The same code runs one task or a whole meta-batch at once (execution: batched): the episode
/// then holds [T, N, ...] tensors, the model runs the tasks side by side with per-task weights
/// (<see cref="IModel.WeightsFor"/>), and the loss is the sum of the tasks' losses.
/// </summary>
public abstract class FastWeightLearner : IMetaLearner
{
    private readonly List<Tensor> owned = [];

    protected FastWeightLearner(IModel model, Objective objective, int innerSteps, int testInnerSteps)
    {
        (Model, Objective, InnerSteps, TestInnerSteps) = (model, objective, innerSteps, testInnerSteps);
    }

    protected IModel Model { get; }
    protected Objective Objective { get; }
    protected int InnerSteps { get; }
    protected int TestInnerSteps { get; }

    public virtual IReadOnlyList<Tensor> OuterParameters => Model.Parameters;
    public virtual IReadOnlyList<string> OuterParameterNames => Model.ParameterNames;

    /// <summary>Fast weights (in the model's parameter order) after <paramref name="steps"/> inner steps on (x, y); createGraph keeps them differentiable.</summary>
    public abstract IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph);

    /// <summary>
    /// The plain inner loop: <paramref name="steps"/> gradient steps on the loss of (x, y) over all
    /// weights, each weight i becoming update(i, w, ∇w) (MAML: w − α∇w; Meta-SGD: w − α_i ∘ ∇w).
    /// </summary>
    protected IReadOnlyList<Tensor> GradientSteps(Tensor x, Tensor y, int steps, bool createGraph, Func<int, Tensor, Tensor, Tensor> update)
    {
        IReadOnlyList<Tensor> fast = Model.WeightsFor(x);
        for (var s = 0; s < steps; s++)
        {
            using var once = FirstOrderPasses.Enter(!createGraph);
            var loss = Objective.Loss(Model.Forward(x, fast), y);
            var grads = Torch.Grad([loss], fast, createGraph: createGraph);
            fast = fast.Select((w, i) => update(i, w, grads[i]!)).ToArray();
        }
        return fast;
    }

    /// <summary>Whether the inner gradients stay in the graph now (second order) or count as constants (first order).</summary>
    protected virtual bool SecondOrder => true;

    public virtual TaskGradient TaskGradient(Episode task, double weight)
    {
        IReadOnlyList<Tensor> fast;
        using (PhaseClock.Time("inner loop")) fast = Adapt(task.SupportX, task.SupportY, InnerSteps, SecondOrder);
        return OuterGradient(task, fast, weight);
    }

    /// <summary>
    /// The gradient of Σ earlier + finalWeight · L_query(f_fast) with respect to the outer
    /// parameters, times <paramref name="weight"/>; the reported metrics are the final query's.
    /// </summary>
    protected TaskGradient OuterGradient(Episode task, IReadOnlyList<Tensor> fast, double weight, IReadOnlyList<WeightedLoss>? earlier = null, double finalWeight = 1)
    {
        using var phase = PhaseClock.Time("outer gradient");
        // The query pass's gradient is taken once (below, without create_graph), also in MAML.
        using var once = FirstOrderPasses.Enter();
        var output = Model.Forward(task.QueryX, fast);
        var loss = Objective.Loss(output, task.QueryY);
        var total = loss;
        if (earlier is { Count: > 0 })
        {
            var sum = earlier[0].Loss * earlier[0].Weight;
            for (var s = 1; s < earlier.Count; s++) sum = sum + earlier[s].Loss * earlier[s].Weight;
            total = sum + loss * finalWeight;
        }
        else if (finalWeight != 1)
        {
            total = loss * finalWeight;
        }
        var grads = Torch.Grad([total * weight], OuterParameters, allowUnused: true);
        // A meta-batch's loss is the sum over its tasks; report the mean, as for one task.
        return new TaskGradient(grads, loss.Item() / Objective.Tasks(output), Objective.Accuracy(output, task.QueryY));
    }

    public AdaptedTask AdaptTo(Episode task)
    {
        var fast = Adapt(task.SupportX, task.SupportY, TestInnerSteps, createGraph: false);
        using var noGrad = Torch.NoGrad();
        using var once = FirstOrderPasses.Enter();
        return new AdaptedTask(Model.Forward(task.QueryX, fast), [.. Model.ParameterNames.Zip(fast, KeyValuePair.Create)]);
    }

    public Func<Tensor, Tensor> Predictor(Episode task)
    {
        var fast = Adapt(task.SupportX, task.SupportY, TestInnerSteps, createGraph: false);
        return x => Model.Forward(x, fast);
    }

    /// <summary>The query prediction after <paramref name="steps"/> inner steps on the support set (0: the learned weights themselves), at any step count.</summary>
    public Tensor PredictAfter(Episode task, int steps)
    {
        var fast = Adapt(task.SupportX, task.SupportY, steps, createGraph: false);
        using var noGrad = Torch.NoGrad();
        using var once = FirstOrderPasses.Enter();
        return Model.Forward(task.QueryX, fast);
    }

    /// <summary>The query score after <paramref name="steps"/> inner steps (Finn et al.'s Figure 3 at one step count).</summary>
    public TaskScore ScoreAfter(Episode task, int steps)
    {
        var output = PredictAfter(task, steps);
        using var noGrad = Torch.NoGrad();
        return Objective.Score(output, task.QueryY);
    }

    /// <summary>The query outputs [T, ...] of a meta-batch's tasks adapted all at once with the test step count: task t's are what <see cref="AdaptTo"/> gives it alone.</summary>
    public Tensor PredictEach(Episode tasks) => PredictAfter(tasks, TestInnerSteps);

    /// <summary>As <see cref="ScoreAfter"/> for each task of a meta-batch [T, ...] adapted all at once.</summary>
    public TaskScore[] ScoreEachAfter(Episode tasks, int steps)
    {
        var output = PredictAfter(tasks, steps);
        using var noGrad = Torch.NoGrad();
        return [.. Enumerable.Range(0, (int)output.Size(0)).Select(t => Objective.Score(output[t], tasks.QueryY[t]))];
    }

    public TaskScore Evaluate(Episode task)
    {
        var logits = AdaptTo(task).Logits;
        using var noGrad = Torch.NoGrad();
        return Objective.Score(logits, task.QueryY);
    }

    /// <summary>A learned outer parameter of the algorithm's own (Meta-SGD's α, MAML++'s rates), freed with the learner.</summary>
    protected Tensor Own(Tensor t)
    {
        t = t.DetachFromScope().RequiresGrad_();
        owned.Add(t);
        return t;
    }

    public void Dispose()
    {
        foreach (var t in owned) t.Dispose();
        Model.Dispose();
        GC.SuppressFinalize(this);
    }
}
