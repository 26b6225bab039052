using LibTorch;

namespace MetaRun.Tests.LibTorch;

/// <summary>
/// Every op of the binding's catalog (OpCatalog, which `metarun check ops` runs on a GPU) on the CPU:
/// float64 gradients against central finite differences, float32 values and gradients against float64.
/// </summary>
public sealed class OpCheckTests
{
    public static TheoryData<string> Names
    {
        get
        {
            var d = new TheoryData<string>();
            foreach (var c in OpCatalog.All) d.Add(c.Name);
            return d;
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void OpAgreesWithFiniteDifferencesAndFloat64(string op)
    {
        var index = OpCatalog.All.Select((c, i) => (c, i)).Single(p => p.c.Name == op).i;
        var r = OpCheck.Check(OpCatalog.All[index], Device.Cpu, 1000 + index);
        Assert.True(r.Passed, $"{op}: {r.Failure}");
    }

    [Fact]
    public void CatalogNamesAreUnique() =>
        Assert.Equal(OpCatalog.All.Count, OpCatalog.All.Select(c => c.Name).Distinct().Count());

    [Fact]
    public void GradCheckDetectsAWrongGradient()
    {
        // The helper must be able to fail: x.Detach() * x has gradient x, not the true 2x.
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() =>
            GradCheck.Check("wrong", x => x[0].Detach() * x[0], new GradInput([3], [0.5, -1.0, 2.0])));
    }

    [Fact]
    public void OpCheckDetectsAWrongGradient()
    {
        var r = OpCheck.Check(new OpCase("wrong", (c, x) => x[0].Detach() * x[0], [new OpInput([3], [0.5, -1.0, 2.0])]), Device.Cpu, 1);
        Assert.False(r.Passed);
        Assert.Contains("finite differences", r.Failure);
    }

    [Fact]
    public void OpCheckDetectsAnOpThatIgnoresThePrecisionItIsGiven()
    {
        // A float64 constant promotes a float32 computation to float64: the check must notice.
        var promoted = OpCheck.Check(new OpCase("promoted", (c, x) => x[0] * Torch.Ones([3], ScalarType.Float64), [new OpInput([3], [0.5, -1.0, 2.0])]), Device.Cpu, 1);
        Assert.False(promoted.Passed);
        Assert.Contains("float64", promoted.Failure);
        // A result that depends on the precision beyond rounding.
        var off = OpCheck.Check(new OpCase("off", (c, x) => c.DType == ScalarType.Float32 ? x[0] * 1.001 : x[0], [new OpInput([3], [0.5, -1.0, 2.0])]), Device.Cpu, 1);
        Assert.False(off.Passed);
        Assert.Contains("forward values differ", off.Failure);
        var forwardOnly = OpCheck.Check(new OpCase("argmax off", (c, x) => c.DType == ScalarType.Float32 ? x[0].ArgMin(0) : x[0].ArgMax(0),
            [new OpInput([3], [0.5, -1.0, 2.0])], Differentiable: false), Device.Cpu, 1);
        Assert.False(forwardOnly.Passed);
    }

    [Fact]
    public void DropoutWithAFixedGeneratorMatchesFiniteDifferences()
    {
        // Dropout draws a new mask on every call; resetting the generator makes each evaluation use
        // the same one (the catalog checks dropout by its properties instead, as masks differ per device).
        using var generator = new Generator(7);
        using var state = generator.GetState().DetachFromScope();
        var rng = new Random(3);
        var data = Enumerable.Range(0, 20).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        GradCheck.Check("dropout fixed generator", x =>
        {
            generator.SetState(state);
            return F.Dropout(x[0], 0.4, training: true, generator);
        }, new GradInput([4, 5], data));
    }
}
