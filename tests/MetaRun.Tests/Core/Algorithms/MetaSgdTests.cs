using LibTorch;
using MetaRun.Algorithms;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>Meta-SGD's learned per-parameter rates against their gradient computed by hand.</summary>
public class MetaSgdTests
{
    [Fact]
    public void MetaSgdGradientWithRespectToAlphaIsMinusInnerGradientTimesOuterGradient()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([]);
        var task = TinyTask();
        using var metaSgd = new MetaSgd(model, new Objective(false), innerLr: 0.1, innerSteps: 1, testInnerSteps: 1);
        using (Torch.NoGrad())
        {
            metaSgd.Alpha[0].CopyFrom(Torch.Full([2, 3], 0.2));   // distinct rates per tensor
            metaSgd.Alpha[1].CopyFrom(Torch.From(new float[] { 0.05f, 0.5f }, 2));
        }
        Assert.Equal(["head.weight", "head.bias", "alpha.head.weight", "alpha.head.bias"], metaSgd.OuterParameterNames);

        // θ' = θ − α ∘ g_s;  ∂L_q(θ')/∂α = −g_s ∘ ∇L_q(θ').
        var theta = model.Parameters;
        var gs = Grad(F.CrossEntropy(F.Linear(task.SupportX, theta[0], theta[1]), task.SupportY), theta);
        var fast = theta.Select((t, i) => (t - metaSgd.Alpha[i].Detach() * gs[i]).Detach().RequiresGrad_()).ToArray();
        var gq = Grad(F.CrossEntropy(F.Linear(task.QueryX, fast[0], fast[1]), task.QueryY), fast);

        var r = metaSgd.TaskGradient(task, weight: 0.5);
        for (var i = 0; i < 2; i++) Close(-0.5 * gs[i] * gq[i], r.Gradients[2 + i]);
    }
}
