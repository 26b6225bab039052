using LibTorch;
using MetaRun.Algorithms;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>ALFA's generated inner rate and decay against steps computed by hand.</summary>
public class AlfaTests
{
    [Fact]
    public void AlfaStartsAsMamlAndThenStepsWithItsGeneratedRateAndDecay()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        var model = Tiny([4]);
        using var alfa = new Alfa(model, new Objective(false), innerLr: 0.3, innerSteps: 1, testInnerSteps: 1, seed: 5);
        var theta = model.Parameters.Select(p => p.Detach().Clone()).ToArray();
        var g = Grad(F.CrossEntropy(model.Forward(task.SupportX, model.Parameters), task.SupportY), model.Parameters);
        // The generator's last layer starts at zero: α = α⁰ = inner_lr and β = β⁰ = 1, MAML's step.
        var fast = alfa.Adapt(task.SupportX, task.SupportY, 1, createGraph: false);
        for (var p = 0; p < 4; p++) Close(theta[p] - 0.3 * g[p], fast[p]);

        // With the generator's output bias set, (1 + a, 1 + b) scale α⁰ and β⁰: θ ← β θ − α g per layer.
        var names = alfa.OuterParameterNames.ToList();
        using (Torch.NoGrad())
        {
            alfa.OuterParameters[names.IndexOf("alfa.g.fc2.bias")].CopyFrom(Torch.From(new float[] { 1, 0, -0.5f, 0, -0.1f, 0, 0, 0.2f }, 8));
            alfa.OuterParameters[names.IndexOf("alfa.alpha0")].CopyFrom(Torch.From(new float[] { 0.3f, 0.2f, 0.1f, 0.4f }, 1, 4));
        }
        float[] alpha = [0.6f, 0.2f, 0.05f, 0.4f], beta = [0.9f, 1f, 1f, 1.2f];
        fast = alfa.Adapt(task.SupportX, task.SupportY, 1, createGraph: false);
        for (var p = 0; p < 4; p++) Close(beta[p] * theta[p] - alpha[p] * g[p], fast[p]);
        var r = alfa.TaskGradient(task, 1.0);
        Assert.NotNull(r.Gradients[names.IndexOf("alfa.g.fc2.weight")]);
        Assert.NotNull(r.Gradients[names.IndexOf("alfa.alpha0")]);
    }
}
