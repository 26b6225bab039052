using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// ADML, Adversarial Meta-Learning (Yin, Tang, Xu and Wang 2018, Algorithm 1). For each task,
/// with FGSM examples of size ε (algorithm.epsilon, pixel units; <see cref="Attack"/>):
///   D_adv  ← FGSM(f_θ, D_support)                       (adversarial support, against θ)
///   θ'_adv ← θ − α ∇θ L(f_θ; D_adv)                     (adapted on adversarial examples)
///   θ'_cln ← θ − α ∇θ L(f_θ; D_support)                 (adapted on clean examples)
///   D'_adv ← FGSM(f_θ'_cln, D_query)                    (adversarial query, against the clean-adapted model)
///   L_i    ← L(f_θ'_adv; D_query) + L(f_θ'_cln; D'_adv) (the two cross losses)
/// and θ descends ∇θ mean_i L_i. The box takes its two meta-updates (β1 on the first cross loss,
/// β2 on the second) one after the other; with β1 = β2 they are taken here as one outer step on
/// their sum — the trainer takes one step per iteration, and to first order in β the two agree.
/// Second order, like MAML; the adversarial examples are constants (no gradient through FGSM).
/// Evaluation adapts on the clean support set, as MAML does; `metarun eval --attack` then
/// measures how robust the adapted model is. Reported training metrics: the mean of the two
/// cross losses and accuracies.
/// </summary>
public sealed class Adml(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, double epsilon, PixelSpace pixels)
    : FastWeightLearner(model, objective, innerSteps, testInnerSteps)
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Adml From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.Epsilon, PixelSpace.Of(c.Family, "algorithm.name: adml"));

    private readonly Attack fgsm = new(AttackKind.Fgsm, epsilon);

    public override IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph) =>
        GradientSteps(x, y, steps, createGraph, (_, w, g) => w - innerLr * g);

    public override TaskGradient TaskGradient(Episode task, double weight)
    {
        var advSupport = pixels.Perturb(x => Model.Forward(x, Model.Parameters), task.SupportX, task.SupportY, Objective, fgsm);
        var adaptedOnAdversarial = Adapt(advSupport, task.SupportY, InnerSteps, createGraph: true);
        var adaptedOnClean = Adapt(task.SupportX, task.SupportY, InnerSteps, createGraph: true);
        var advQuery = pixels.Perturb(x => Model.Forward(x, adaptedOnClean), task.QueryX, task.QueryY, Objective, fgsm);

        var cleanOutput = Model.Forward(task.QueryX, adaptedOnAdversarial);
        var advOutput = Model.Forward(advQuery, adaptedOnClean);
        var (cleanLoss, advLoss) = (Objective.Loss(cleanOutput, task.QueryY), Objective.Loss(advOutput, task.QueryY));
        var grads = Torch.Grad([(cleanLoss + advLoss) * weight], OuterParameters, allowUnused: true);
        return new TaskGradient(grads, (cleanLoss.Item() + advLoss.Item()) / 2,
            (Objective.Accuracy(cleanOutput, task.QueryY) + Objective.Accuracy(advOutput, task.QueryY)) / 2);
    }
}
