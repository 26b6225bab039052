using LibTorch;
using MetaRun.Tests.LibTorch;
using MetaRun.Training;

namespace MetaRun.Tests.Training;

/// <summary>The worker threads a meta-batch's tasks run on.</summary>
[Collection(TorchSerialCollection.Name)]
public sealed class TaskWorkersTests
{
    [Fact]
    public void Workers_sum_with_the_callers_thread_count_on_pool_threads_that_first_worked_under_another()
    {
        var threads = Torch.Threads;
        try
        {
            using var scope = Torch.NewScope();
            using var gen = new Generator(7);
            // Large enough that libtorch splits the sum over two threads when it may: other last bits.
            var x = Torch.Randn([4_000_000], generator: gen);
            Torch.Threads = 2;
            TaskWorkers.ForEach(64, 8, _ => x.Sum().Item());
            Torch.Threads = 1;
            var expected = x.Sum().Item();
            var (counts, sums) = (new int[64], new double[64]);
            TaskWorkers.ForEach(64, 2, i => (counts[i], sums[i]) = (Torch.Threads, x.Sum().Item()));
            Assert.All(counts, c => Assert.Equal(1, c));
            Assert.All(sums, s => Assert.Equal(expected, s));
        }
        finally
        {
            Torch.Threads = threads;
        }
    }
}
