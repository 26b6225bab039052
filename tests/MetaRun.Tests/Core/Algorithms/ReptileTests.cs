using LibTorch;
using MetaRun.Algorithms;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>Reptile's outer gradient and step against the task-trained weights computed by hand.</summary>
public class ReptileTests
{
    [Fact]
    public void ReptileMovesThetaTowardTheTaskTrainedWeightsByEpsilon()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([]);
        var theta = model.Parameters.Select(p => p.Detach().Clone()).ToArray();
        var task = TinyTask();
        const double lr = 0.3, eps = 0.25;
        using var reptile = new Reptile(model, new Objective(false), lr, innerSteps: 3, testInnerSteps: 3, adam: false, innerBatch: 0);

        // By hand: 3 SGD steps on support and query pooled.
        var x = Torch.Cat([task.SupportX, task.QueryX]);
        var y = Torch.Cat([task.SupportY, task.QueryY]);
        var phi = theta.Select(t => t.Clone().RequiresGrad_()).ToArray();
        for (var s = 0; s < 3; s++)
        {
            var g = Grad(F.CrossEntropy(F.Linear(x, phi[0], phi[1]), y), phi);
            phi = phi.Select((p, i) => (p - lr * g[i]).Detach().RequiresGrad_()).ToArray();
        }

        var r = reptile.TaskGradient(task, weight: 1.0);
        for (var i = 0; i < 2; i++) Close(theta[i] - phi[i], r.Gradients[i]);

        // The outer SGD step with learning rate ε is θ + ε (φ − θ).
        using var sgd = new Sgd(model.Parameters, eps);
        sgd.Step(r.Gradients);
        for (var i = 0; i < 2; i++) Close(theta[i] + eps * (phi[i] - theta[i]), model.Parameters[i]);
    }
}
