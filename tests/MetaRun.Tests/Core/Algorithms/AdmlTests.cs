using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Models;

namespace MetaRun.Tests.Algorithms;

/// <summary>ADML's update against its algorithm box and finite differences.</summary>
public class AdmlTests
{
    private static (Conv4 Model, Episode Task) TinyImageTask()
    {
        using var g = new Generator(8);
        var model = new Conv4([1, 16, 16], filters: 4, outputs: 2, maxPool: false, g, Device.Cpu);
        var sx = Torch.Rand([4, 1, 16, 16], generator: g) * 0.6 + 0.2;
        var qx = Torch.Rand([6, 1, 16, 16], generator: g) * 0.6 + 0.2;
        return (model, new Episode(sx, Torch.From(new long[] { 0, 1, 0, 1 }, 4), qx, Torch.From(new long[] { 1, 0, 1, 0, 1, 0 }, 6)));
    }

    [Fact]
    public void AdmlOuterLossIsItsTwoCrossLossesAndItsGradientMatchesFiniteDifferences()
    {
        using var scope = Torch.NewScope();
        var (model, task) = TinyImageTask();
        var pixels = new PixelSpace([1f / 255], [0f]);
        var objective = new Objective(false);
        using var adml = new Adml(model, objective, innerLr: 0.3, innerSteps: 1, testInnerSteps: 1, epsilon: 0.05, pixels);

        // The box by hand: FGSM support against θ, one SGD step on each support set, FGSM query
        // against the clean-adapted weights, then the two cross losses.
        var fgsm = new Attack(AttackKind.Fgsm, 0.05);
        var theta = model.Parameters;
        IReadOnlyList<Tensor> Step(Tensor x)
        {
            var grads = Torch.Grad([objective.Loss(model.Forward(x, theta), task.SupportY)], theta);
            return theta.Select((w, i) => (w - 0.3 * grads[i]!).Detach()).ToArray();
        }
        var advSupport = pixels.Perturb(x => model.Forward(x, theta), task.SupportX, task.SupportY, objective, fgsm);
        var advQuery = pixels.Perturb(x => model.Forward(x, Step(task.SupportX)), task.QueryX, task.QueryY, objective, fgsm);
        double ByHand() => objective.Loss(model.Forward(task.QueryX, Step(advSupport)), task.QueryY).Item()
            + objective.Loss(model.Forward(advQuery, Step(task.SupportX)), task.QueryY).Item();
        var r = adml.TaskGradient(task, 1.0);
        Assert.Equal(ByHand(), 2 * r.Loss, 5);

        // ADML takes the adversarial examples as constants (no gradient through FGSM): finite
        // differences of the hand-written objective with those examples held fixed. (Recomputing
        // them at θ ± h would cross FGSM's sign flips, where the objective jumps.)
        // h = 1e-5: the tiny net's ReLU and batch-norm kinks lie within 1e-4 (h = 1e-4 crosses one:
        // 38 against −3.5). At that h one float32 ulp of the loss (≈ 1.4) moves the quotient by
        // 0.008, hence absTol 0.03; a conv bias before batch norm has a true gradient of 0.
        var sizeable = FiniteDifferences.Check(adml.OuterParameters, adml.OuterParameterNames, r.Gradients, ByHand, h: 1e-5, absTol: 0.03, relTol: 0.05, perTensor: 2);
        Assert.True(sizeable >= 10, $"only {sizeable} sizeable gradient entries");
    }

    [Fact]
    public void AdmlNeedsImagesToPerturb()
    {
        var e = Assert.Throws<ConfigException>(() => PixelSpace.Of(null, "algorithm.name: adml"));
        Assert.StartsWith("algorithm.name: adml", e.Message);
    }
}
