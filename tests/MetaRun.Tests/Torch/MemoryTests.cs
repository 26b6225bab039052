using System.Diagnostics;
using LibTorch;
using Xunit.Abstractions;

namespace MetaRun.Tests.LibTorch;

/// <summary>A long training-like loop under per-iteration scopes keeps native memory flat.</summary>
[Collection(TorchSerialCollection.Name)]
public sealed class MemoryTests(ITestOutputHelper output)
{
    private const int Iterations = 10_000;
    private const int WarmUp = 500;
    private const long RssSlackBytes = 8L << 20;

    [Fact]
    public void TenThousandScopedForwardBackwardStepsLeakNeitherTensorsNorMemory()
    {
        // Created outside any scope: this test owns them and disposes them at the end.
        using var gen = new Generator(5);
        var w1 = Torch.Randn([16, 8], ScalarType.Float32, generator: gen).Mul_(0.3).RequiresGrad_();
        var b1 = Torch.Zeros([16]).RequiresGrad_();
        var w2 = Torch.Randn([3, 16], ScalarType.Float32, generator: gen).Mul_(0.3).RequiresGrad_();
        var b2 = Torch.Zeros([3]).RequiresGrad_();
        Tensor[] parameters = [w1, b1, w2, b2];
        var x = Torch.Randn([32, 8], generator: gen);
        var y = Torch.RandInt(0, 3, [32], generator: gen);
        try
        {
            var live = Torch.LiveTensors;
            long rssAfterWarmUp = 0;
            double firstLoss = 0, lastLoss = 0;
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < Iterations; i++)
            {
                if (i == WarmUp)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    rssAfterWarmUp = TestSupport.RssBytes();
                }
                using var scope = Torch.NewScope();
                var h = F.Linear(x, w1, b1).Relu();
                var loss = F.CrossEntropy(F.Linear(h, w2, b2), y);
                if (i % 2 == 0)
                {
                    // Functional gradients (Torch.Grad), applied without recording.
                    var grads = Torch.Grad([loss], parameters);
                    using var noGrad = Torch.NoGrad();
                    for (var k = 0; k < parameters.Length; k++) parameters[k].Add_(grads[k]!, -0.05);
                }
                else
                {
                    // Accumulated gradients (Backward + .Grad).
                    loss.Backward();
                    using var noGrad = Torch.NoGrad();
                    foreach (var p in parameters)
                    {
                        p.Add_(p.Grad!, -0.05);
                        p.ZeroGrad();
                    }
                }
                if (i == 0) firstLoss = loss.Item();
                if (i == Iterations - 1) lastLoss = loss.Item();
            }
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var rssEnd = TestSupport.RssBytes();
            output.WriteLine($"{Iterations} iterations in {clock.Elapsed.TotalSeconds:F1} s; loss {firstLoss:F4} -> {lastLoss:F4}; " +
                             $"RSS after warm-up {rssAfterWarmUp >> 10} KiB, at the end {rssEnd >> 10} KiB");

            Assert.Equal(live, Torch.LiveTensors);
            Assert.True(rssEnd - rssAfterWarmUp < RssSlackBytes,
                $"RSS grew by {(rssEnd - rssAfterWarmUp) >> 10} KiB between iteration {WarmUp} and {Iterations}");
            Assert.True(lastLoss < firstLoss, $"the loop did not train: loss {firstLoss} -> {lastLoss}");
        }
        finally
        {
            foreach (var t in parameters.Append(x).Append(y)) t.Dispose();
        }
    }

    [Fact]
    public void ALeakIsVisibleInLiveTensors()
    {
        // The counter the test above relies on does move when tensors are kept.
        var before = Torch.LiveTensors;
        var kept = Enumerable.Range(0, 10).Select(_ => Torch.Zeros([4])).ToArray();
        Assert.Equal(before + 10, Torch.LiveTensors);
        foreach (var t in kept) t.Dispose();
        Assert.Equal(before, Torch.LiveTensors);
    }
}
