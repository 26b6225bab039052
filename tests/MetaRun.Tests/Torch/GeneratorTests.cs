using LibTorch;
using static MetaRun.Tests.LibTorch.TestSupport;

namespace MetaRun.Tests.LibTorch;

/// <summary>Seeding and generator state: the reproducibility a resumed run depends on.</summary>
public sealed class GeneratorTests
{
    [Fact]
    public void SameSeedGivesIdenticalNumbersAcrossGenerators()
    {
        using var scope = Torch.NewScope();
        using var g1 = new Generator(42);
        using var g2 = new Generator(42);
        var a = Torch.Randn([100], ScalarType.Float64, generator: g1).D();
        var b = Torch.Randn([100], ScalarType.Float64, generator: g2).D();
        Assert.Equal(a, b);
        // Both streams continue identically, across distributions and dtypes.
        Assert.Equal(Torch.Rand([7], generator: g1).ToArray<float>(), Torch.Rand([7], generator: g2).ToArray<float>());
        Assert.Equal(Torch.RandInt(0, 1000, [9], generator: g1).ToArray<long>(), Torch.RandInt(0, 1000, [9], generator: g2).ToArray<long>());
        Assert.Equal(Torch.Randn([5], generator: g1).ToArray<float>(), Torch.Randn([5], generator: g2).ToArray<float>());
        // ... and a stream does not repeat itself.
        Assert.NotEqual(a, Torch.Randn([100], ScalarType.Float64, generator: g1).D());
    }

    [Fact]
    public void GetStateAndSetStateReplayTheSameNumbers()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(123);
        _ = Torch.Randn([13], generator: g); // advance somewhere arbitrary
        var state = g.GetState();
        Assert.Equal(ScalarType.UInt8, state.DType);
        Assert.True(state.NumElements > 0);
        var first = Torch.Randn([64], ScalarType.Float64, generator: g).D();
        var firstU = Torch.Rand([10], generator: g).ToArray<float>();
        g.SetState(state);
        Assert.Equal(first, Torch.Randn([64], ScalarType.Float64, generator: g).D());
        Assert.Equal(firstU, Torch.Rand([10], generator: g).ToArray<float>());

        // The state moves to another generator, even one seeded differently, and survives a safetensors round trip.
        using var file = Safetensors.Deserialize(Safetensors.Serialize(new Dictionary<string, Tensor> { ["rng"] = state }));
        using var other = new Generator(999);
        other.SetState(file["rng"]);
        Assert.Equal(first, Torch.Randn([64], ScalarType.Float64, generator: other).D());

        // A state that is not one is refused with a TorchException, not a crash.
        Assert.Throws<TorchException>(() => g.SetState(Torch.Zeros([3], ScalarType.UInt8)));
    }

    [Fact]
    public void DifferentSeedsGiveDifferentNumbers()
    {
        using var scope = Torch.NewScope();
        using var g1 = new Generator(1);
        using var g2 = new Generator(2);
        var a = Torch.Randn([100], ScalarType.Float64, generator: g1).D();
        var b = Torch.Randn([100], ScalarType.Float64, generator: g2).D();
        Assert.NotEqual(a, b);
        Assert.True(a.Zip(b).Count(p => p.First == p.Second) < 5);
    }
}

/// <summary>
/// libtorch's default generator is process-wide: this runs in the serial collection so that no
/// other test draws from it between seeding and drawing.
/// </summary>
[Collection(TorchSerialCollection.Name)]
public sealed class DefaultGeneratorTests
{
    [Fact]
    public void ManualSeedMakesTheDefaultGeneratorReproducible()
    {
        double[] Draw(ulong seed)
        {
            using var scope = Torch.NewScope();
            Torch.ManualSeed(seed);
            return Torch.Randn([50], ScalarType.Float64).D();
        }
        var a = Draw(7);
        Assert.Equal(a, Draw(7));
        Assert.NotEqual(a, Draw(8));
        // A generator seeded alike produces the same stream as the seeded default generator.
        using var scope = Torch.NewScope();
        using var g = new Generator(7);
        Assert.Equal(a, Torch.Randn([50], ScalarType.Float64, generator: g).D());
    }
}
