using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Meta-SGD (Li, Zhou, Chen and Li 2017, Algorithm 1). MAML whose inner step size is itself
/// learned, one rate per weight (α has θ's shapes, starting at algorithm.inner_lr):
///   θ'  ← θ − α ∘ ∇θ L_support(f_θ)
///   (θ, α) ← (θ, α) − β ∇(θ, α) mean_i L_query(f_θ'_i)
/// α can then pick both the direction and the size of the update; it is saved with θ as
/// "alpha.NAME". Always second order: ∇α needs the inner gradient in the graph.
/// </summary>
public sealed class MetaSgd : UnrolledLearner
{
    private readonly Tensor[] alpha;

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static MetaSgd From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps) { CheckpointInnerSteps = c.Config.CheckpointInnerSteps };

    public MetaSgd(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps)
        : base(model, objective, innerSteps, testInnerSteps)
    {
        alpha = model.Parameters.Select(p => Own(Torch.Full(p.Shape, innerLr, p.DType, p.Device))).ToArray();
        OuterParameters = [.. model.Parameters, .. alpha];
        OuterParameterNames = [.. model.ParameterNames, .. model.ParameterNames.Select(n => "alpha." + n)];
    }

    public override IReadOnlyList<Tensor> OuterParameters { get; }
    public override IReadOnlyList<string> OuterParameterNames { get; }
    public IReadOnlyList<Tensor> Alpha => alpha;

    protected override IReadOnlyList<Tensor> Step(InnerData support, int step, IReadOnlyList<Tensor> fast, bool createGraph) =>
        GradientStep(support, fast, createGraph, (i, w, g) => w - alpha[i] * g);
}
