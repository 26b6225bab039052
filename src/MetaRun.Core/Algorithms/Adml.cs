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
    : UnrolledLearner(model, objective, innerSteps, testInnerSteps)
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Adml From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.Epsilon, PixelSpace.Of(c.Family, "algorithm.name: adml")) { CheckpointInnerSteps = c.Config.CheckpointInnerSteps };

    private readonly Attack fgsm = new(AttackKind.Fgsm, epsilon);

    protected override IReadOnlyList<Tensor> Step(InnerData support, int step, IReadOnlyList<Tensor> fast, bool createGraph) =>
        GradientStep(support, fast, createGraph, (_, w, g) => w - innerLr * g);

    public override TaskGradient TaskGradient(Episode task, double weight)
    {
        if (CheckpointInnerSteps) return CheckpointedAdmlGradient(task, weight);
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

    /// <summary>The same gradient with both inner loops checkpointed (algorithm.checkpoint_inner_steps).</summary>
    private TaskGradient CheckpointedAdmlGradient(Episode task, double weight)
    {
        var advSupport = pixels.Perturb(x => Model.Forward(x, Model.Parameters), task.SupportX, task.SupportY, Objective, fgsm);
        var onAdversarial = Record(advSupport, task.SupportY, InnerSteps);
        var onClean = Record(task.SupportX, task.SupportY, InnerSteps);
        var advQuery = pixels.Perturb(x => Model.Forward(x, onClean.Final), task.QueryX, task.QueryY, Objective, fgsm);
        Tensor?[] outer, adversarialAdjoint, cleanAdjoint;
        Tensor cleanOutput, advOutput;
        double cleanLoss, advLoss;
        using (Torch.NewScope())
        {
            var a = onAdversarial.Final.Select(w => w.Detach().RequiresGrad_()).ToArray();
            var c = onClean.Final.Select(w => w.Detach().RequiresGrad_()).ToArray();
            var (co, ao) = (Model.Forward(task.QueryX, a), Model.Forward(advQuery, c));
            var (cl, al) = (Objective.Loss(co, task.QueryY), Objective.Loss(ao, task.QueryY));
            var all = Torch.Grad([(cl + al) * weight], [.. a, .. c, .. OuterParameters], allowUnused: true);
            using var noGrad = Torch.NoGrad();
            var kept = all.Select(t => t?.Detach().MoveToOuterScope()).ToArray();
            (adversarialAdjoint, cleanAdjoint, outer) = (kept[..a.Length], kept[a.Length..(2 * a.Length)], kept[(2 * a.Length)..]);
            (cleanOutput, advOutput) = (co.Detach().MoveToOuterScope(), ao.Detach().MoveToOuterScope());
            (cleanLoss, advLoss) = (cl.Item(), al.Item());
        }
        Backpropagate(onAdversarial, adversarialAdjoint, outer, secondOrder: true);
        Backpropagate(onClean, cleanAdjoint, outer, secondOrder: true);
        return new TaskGradient(outer, (cleanLoss + advLoss) / 2,
            (Objective.Accuracy(cleanOutput, task.QueryY) + Objective.Accuracy(advOutput, task.QueryY)) / 2);
    }
}
