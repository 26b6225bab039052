using LibTorch;
using MetaRun.Algorithms;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>Relation Networks' gradient against finite differences.</summary>
public class RelationNetTests
{
    [Fact]
    public void RelationNetGradientMatchesFiniteDifferencesOfItsMseToOneHot()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        using var net = new RelationNet(Tiny([4], outputs: 1), new Objective(false), seed: 7);
        Assert.Equal(["layer0.weight", "layer0.bias", "relation.fc1.weight", "relation.fc1.bias", "relation.fc2.weight", "relation.fc2.bias", "relation.fc3.weight", "relation.fc3.bias"], net.OuterParameterNames);
        // h = 2e-3: small enough not to step over a ReLU kink, large for float32 losses.
        FiniteDifferences.Check(net.OuterParameters, net.OuterParameterNames, net.TaskGradient(task, 1.0).Gradients,
            () => net.Evaluate(task).Loss, h: 2e-3, absTol: 2e-3, relTol: 0.02);
        // The loss is the mean squared error of the relation scores (in [0, 1]) to the one-hot labels.
        Assert.InRange(net.Evaluate(task).Loss, 0.0, 1.0);
    }
}
