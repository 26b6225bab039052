using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Alpha MAML (Behl, Baydin and Torr 2019): MAML whose inner rate α and outer rate β are tuned
/// online by hypergradient descent (Baydin et al. 2018) instead of by hand. Iteration t:
///   θ'_i ← θ − α ∇θ L_support,i(θ)                  (inner steps, differentiable)
///   G_t  = ∇θ mean_i L_query,i(θ'_i)                 (the meta-gradient)
///   α    ← α − μ_α ∂/∂α mean_i L_query,i(θ'_i)       (one step: α + μ_α mean_i ∇θ'L_query · ∇θL_support)
///   β_t  ← β_{t−1} + μ_β G_t · G_{t−1}                (SGD-HD: β grows while consecutive meta-gradients agree)
///   θ    ← θ − β_t G_t
/// with α₀ = algorithm.inner_lr, β₀ = algorithm.outer_lr, μ_α = algorithm.inner_hyper_lr and
/// μ_β = algorithm.outer_hyper_lr. The outer step is plain SGD, as the rule for β assumes
/// (outer_optimizer: sgd, constant schedule). α, β and G_{t−1} are saved in the checkpoint
/// ("alpha_maml.*"), so a resumed run continues their trajectories bit for bit; both rates are
/// logged with every iteration's metrics (columns inner_lr and outer_lr).
/// </summary>
public sealed class AlphaMaml : UnrolledLearner, IOuterStepAware, ITracesHyperparameters
{
    private readonly Tensor alpha, beta;
    private readonly Tensor[] previous;
    private readonly int alphaIndex, modelCount;
    private readonly double innerHyperLr, outerHyperLr;

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static AlphaMaml From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.OuterLr, c.Config.InnerHyperLr, c.Config.OuterHyperLr) { CheckpointInnerSteps = c.Config.CheckpointInnerSteps };

    public AlphaMaml(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, double outerLr, double innerHyperLr, double outerHyperLr)
        : base(model, objective, innerSteps, testInnerSteps)
    {
        (this.innerHyperLr, this.outerHyperLr) = (innerHyperLr, outerHyperLr);
        var device = model.Parameters[0].Device;
        alpha = Own(Torch.Full([], innerLr, ScalarType.Float32, device));
        beta = Own(Torch.Full([], outerLr, ScalarType.Float32, device));
        previous = model.Parameters.Select(p => Own(Torch.Zeros(p.Shape, device: device))).ToArray();
        modelCount = model.Parameters.Count;
        alphaIndex = modelCount;
        OuterParameters = [.. model.Parameters, alpha, beta, .. previous];
        OuterParameterNames = [.. model.ParameterNames, "alpha_maml.inner_lr", "alpha_maml.outer_lr", .. model.ParameterNames.Select(n => "alpha_maml.previous_gradient." + n)];
    }

    public override IReadOnlyList<Tensor> OuterParameters { get; }
    public override IReadOnlyList<string> OuterParameterNames { get; }

    protected override IReadOnlyList<Tensor> Step(InnerData support, int step, IReadOnlyList<Tensor> fast, bool createGraph) =>
        GradientStep(support, fast, createGraph, (_, w, g) => w - alpha * g);

    public double BeforeOuterStep(Tensor?[] gradients, double learningRate)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        if (gradients[alphaIndex] is { } da) alpha.Add_(da, -innerHyperLr);
        double agreement = 0;
        for (var k = 0; k < modelCount; k++)
        {
            if (gradients[k] is not { } g) continue;
            agreement += (g.To(ScalarType.Float64) * previous[k].To(ScalarType.Float64)).Sum().Item();
            previous[k].CopyFrom(g);
        }
        beta.Fill_(beta.Item() + outerHyperLr * agreement);
        // The rates follow their own rules, not the outer optimizer's.
        for (var k = modelCount; k < gradients.Length; k++) gradients[k] = null;
        return beta.Item();
    }

    public IReadOnlyList<string> TracedNames { get; } = ["inner_lr", "outer_lr"];

    public IReadOnlyList<double> Traced() => [alpha.Item(), beta.Item()];
}
