using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// The pretrained baseline of Finn, Abbeel and Levine (2017, §5.1, Figures 2 and 3): one network
/// trained on every task's data jointly (support and query points pooled), with no inner loop,
///   θ ← θ − β ∇θ Σ_i L_i(f_θ)   over all points of task i
/// and at test time fine-tuned on the support set exactly as MAML adapts, test_inner_steps steps of
///   θ' ← θ − α ∇θ L_support(f_θ)
/// It is what MAML is compared with: the same network, data and fine-tuning, without learning
/// to be fine-tuned. (maml with inner_steps: 0 comes close, but trains on the query points only.)
/// </summary>
public sealed class Pretrained(IModel model, Objective objective, double innerLr, int testInnerSteps)
    : FastWeightLearner(model, objective, innerSteps: 0, testInnerSteps)
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Pretrained From(AlgorithmContext c) => new(c.Model, c.Objective, c.Config.InnerLr, c.Config.EffectiveTestInnerSteps);

    public override IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph) =>
        GradientSteps(x, y, steps, createGraph, (_, w, g) => w - innerLr * g);

    /// <summary>The loss of θ itself on the task's support and query points together.</summary>
    public override TaskGradient TaskGradient(Episode task, double weight)
    {
        var x = Torch.Cat([task.SupportX, task.QueryX]);
        var y = Torch.Cat([task.SupportY, task.QueryY]);
        return OuterGradient(new Episode(x, y, x, y), Model.WeightsFor(x), weight);
    }
}
