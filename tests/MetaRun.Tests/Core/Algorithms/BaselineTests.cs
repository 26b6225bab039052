using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>What the baseline needs from its task family.</summary>
public class BaselineTests
{
    [Fact]
    public void BaselineNeedsAFamilyWithClassBatches()
    {
        using var scope = Torch.NewScope();
        using var family = new SinusoidTaskFamily(1);
        var e = Assert.Throws<ConfigException>(() => AlgorithmRegistry.Create(new AlgorithmConfig { Name = "baseline" }, Tiny([4]), new Objective(false), family));
        Assert.Contains("algorithm.name", e.Message);
    }
}
