using LibTorch;
using MetaRun.Algorithms;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>Prototypical Networks' logits by hand, and what it trains and saves.</summary>
public class ProtoNetTests
{
    [Fact]
    public void ProtoNetLogitsAreNegativeSquaredDistancesToClassMeans()
    {
        using var scope = Torch.NewScope();
        var support = Torch.From(new float[] { 0, 0, 2, 0, 0, 4 }, 3, 2);
        var prototypes = ProtoNet.Prototypes(support, Torch.From(new long[] { 0, 0, 1 }, 3), ways: 2);
        Close(Torch.From(new float[] { 1, 0, 0, 4 }, 2, 2), prototypes);
        var logits = ProtoNet.Logits(Torch.From(new float[] { 1, 1, 0, 3 }, 2, 2), prototypes);
        // (1,1): −(0² + 1²) = −1 to (1,0); −(1² + 3²) = −10 to (0,4). (0,3): −(1 + 9) = −10; −(0 + 1) = −1.
        Close(Torch.From(new float[] { -1, -10, -10, -1 }, 2, 2), logits);
    }

    [Fact]
    public void ProtoNetTrainsAndSavesOnlyTheBody()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([4], outputs: 1);
        using var proto = new ProtoNet(model, new Objective(false));
        Assert.Equal(["layer0.weight", "layer0.bias"], proto.OuterParameterNames);
        var r = proto.TaskGradient(TinyTask(), 1.0);
        Assert.Equal(2, r.Gradients.Length);
        Assert.All(r.Gradients, g => Assert.NotNull(g));
    }
}
