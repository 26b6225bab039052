using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Meta-SGD (Li, Zhou, Chen and Li 2017, Algorithm 1). MAML whose inner step size is itself
/// learned, one rate per weight (α has θ's shapes, starting at algorithm.inner_lr):
///   θ'  ← θ − α ∘ ∇θ L_support(f_θ)
///   (θ, α) ← (θ, α) − β ∇(θ, α) mean_i L_query(f_θ'_i)
/// α can then pick both the direction and the size of the update; it is saved with θ as
/// "alpha.NAME". Always second order: ∇α needs the inner gradient in the graph.
/// </summary>
public sealed class MetaSgd : IMetaLearner
{
    private readonly IModel model;
    private readonly Objective objective;
    private readonly int innerSteps, testInnerSteps;
    private readonly Tensor[] alpha;

    public MetaSgd(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps)
    {
        (this.model, this.objective, this.innerSteps, this.testInnerSteps) = (model, objective, innerSteps, testInnerSteps);
        alpha = model.Parameters.Select(p => Torch.Full(p.Shape, innerLr, p.DType, p.Device).DetachFromScope().RequiresGrad_()).ToArray();
        OuterParameters = [.. model.Parameters, .. alpha];
        OuterParameterNames = [.. model.ParameterNames, .. model.ParameterNames.Select(n => "alpha." + n)];
    }

    public IReadOnlyList<Tensor> OuterParameters { get; }
    public IReadOnlyList<string> OuterParameterNames { get; }
    public IReadOnlyList<Tensor> Alpha => alpha;

    public IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph)
    {
        IReadOnlyList<Tensor> fast = model.Parameters;
        for (var s = 0; s < steps; s++)
        {
            var loss = objective.Loss(model.Forward(x, fast), y);
            var grads = Torch.Grad([loss], fast, createGraph: createGraph);
            fast = fast.Select((w, i) => w - alpha[i] * grads[i]!).ToArray();
        }
        return fast;
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        IReadOnlyList<Tensor> fast;
        using (PhaseClock.Time("inner loop")) fast = Adapt(task.SupportX, task.SupportY, innerSteps, createGraph: true);
        return FastWeights.OuterGradient(model, objective, task, fast, OuterParameters, weight);
    }

    public TaskScore Evaluate(Episode task)
    {
        var fast = Adapt(task.SupportX, task.SupportY, testInnerSteps, createGraph: false);
        return FastWeights.Score(model, objective, task, fast);
    }

    public void Dispose()
    {
        foreach (var a in alpha) a.Dispose();
        model.Dispose();
    }
}
