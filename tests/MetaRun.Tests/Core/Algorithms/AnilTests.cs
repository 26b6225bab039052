using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>ANIL's head-only inner loop against a step computed by hand.</summary>
public class AnilTests
{
    [Fact]
    public void AnilAdaptsOnlyTheHeadAndStillLearnsTheBodyOuter()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([4]);
        var task = TinyTask();
        using var anil = new Anil(model, new Objective(false), innerLr: 0.4, innerSteps: 1, testInnerSteps: 1, firstOrder: false);
        var fast = anil.Adapt(task.SupportX, task.SupportY, steps: 1, createGraph: true);

        var h = model.IndicesOf(ParameterRole.HeadWeight)[0];
        Assert.Equal(2, h);
        Assert.Equal([ParameterRole.Body, ParameterRole.Body, ParameterRole.HeadWeight, ParameterRole.HeadBias], model.Roles);
        for (var i = 0; i < h; i++) Assert.Same(model.Parameters[i], fast[i]);
        var w = model.Parameters;
        var g = Grad(F.CrossEntropy(model.Forward(task.SupportX, w), task.SupportY), w.Skip(h).ToArray());
        for (var i = 0; i < 2; i++) Close(w[h + i] - 0.4 * g[i], fast[h + i]);

        var r = anil.TaskGradient(task, 1.0);
        Assert.All(r.Gradients, gr => Assert.NotNull(gr));
        Assert.True(Values(r.Gradients[0]!.Abs().Sum())[0] > 0, "the outer loop must reach the body");
    }
}
