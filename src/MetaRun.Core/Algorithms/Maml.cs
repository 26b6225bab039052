using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Model-Agnostic Meta-Learning (Finn, Abbeel and Levine 2017, Algorithm 2). For each task:
///   θ'  ← θ − α ∇θ L_support(f_θ)        (inner SGD steps, differentiable)
///   L_i ← L_query(f_θ')
/// and the outer step descends ∇θ mean_i L_i. First-order MAML treats the inner gradients as
/// constants, dropping the second-order term.
/// </summary>
public sealed class Maml(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, bool firstOrder)
    : UnrolledLearner(model, objective, innerSteps, testInnerSteps)
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Maml From(AlgorithmContext c, bool firstOrder) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, firstOrder) { CheckpointInnerSteps = c.Config.CheckpointInnerSteps };

    protected override bool SecondOrder => !firstOrder;

    protected override IReadOnlyList<Tensor> Step(InnerData support, int step, IReadOnlyList<Tensor> fast, bool createGraph) =>
        GradientStep(support, fast, createGraph, (_, w, g) => w - innerLr * g);
}
