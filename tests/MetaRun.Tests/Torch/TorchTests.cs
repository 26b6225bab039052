using LibTorch;

namespace MetaRun.Tests.LibTorch;

/// <summary>libtorch's process-wide settings, changed one test at a time.</summary>
[Collection(TorchSerialCollection.Name)]
public sealed class TorchTests
{
    [Fact]
    public void TorchThreadsAlsoSizesOpenBlasWhereLibTorchUsesIt()
    {
        var threads = Torch.Threads;
        var usesOpenBlas = File.ReadAllText("/proc/self/maps").Contains("libopenblas");
        try
        {
            foreach (var n in new[] { 1, 2 })
            {
                Torch.Threads = n;
                Assert.Equal(n, Torch.Threads);
                // Left at the machine's core count, OpenBLAS's own pool oversubscribes task-parallel workers.
                Assert.Equal(usesOpenBlas ? n : null, Torch.BlasThreads);
            }
        }
        finally
        {
            Torch.Threads = threads;
        }
    }
}
