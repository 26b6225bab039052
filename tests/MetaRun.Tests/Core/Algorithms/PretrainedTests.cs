using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;

using static MetaRun.Tests.Algorithms.LinearTask;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// The pretrained baseline on y = w·x + b with squared error: its task gradient is the gradient
/// at θ itself (no inner step) of the loss over support and query points pooled,
/// ∇L = (2/n) Σ r_i (x_i, 1); at test time it takes MAML's steps θ' = θ − α ∇L_support(θ).
/// </summary>
public class PretrainedTests
{
    private static Pretrained Learner()
    {
        using var g = new Generator(1);
        var model = new Mlp(1, [], 1, g, Device.Cpu);
        using (Torch.NoGrad())
        {
            model.Parameters[0].CopyFrom(Torch.Full([1, 1], W));
            model.Parameters[1].CopyFrom(Torch.Full([1], B));
        }
        return new Pretrained(model, new Objective(regression: true), Alpha, testInnerSteps: 1);
    }

    [Fact]
    public void ItsTaskGradientIsThePooledSupportAndQueryLossGradientAtTheSharedWeights()
    {
        using var scope = Torch.NewScope();
        using var learner = Learner();
        var task = new Episode(Column(SupportX), Column(SupportY), Column(QueryX), Column(QueryY));
        var grads = learner.TaskGradient(task, Weight).Gradients;
        var hand = Gradient(W, B, [.. SupportX, .. QueryX], [.. SupportY, .. QueryY]);
        Assert.Equal(Weight * hand.W, grads[0]!.Item(), 5);
        Assert.Equal(Weight * hand.B, grads[1]!.Item(), 5);
    }

    [Fact]
    public void AtTestTimeItFineTunesWithMamlsInnerStep()
    {
        using var scope = Torch.NewScope();
        using var learner = Learner();
        var task = new Episode(Column(SupportX), Column(SupportY), Column(QueryX), Column(QueryY));
        var gs = Gradient(W, B, SupportX, SupportY);
        var predicted = learner.PredictAfter(task, 1).ToArray<float>();
        for (var i = 0; i < QueryX.Length; i++)
            Assert.Equal((W - Alpha * gs.W) * QueryX[i] + (B - Alpha * gs.B), predicted[i], 5);
        var before = learner.PredictAfter(task, 0).ToArray<float>();
        Assert.Equal(W * QueryX[0] + B, before[0], 5);
    }
}
