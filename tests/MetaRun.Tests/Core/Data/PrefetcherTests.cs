using LibTorch;
using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>The prefetcher: order, work ahead, errors, and tensors handed across threads.</summary>
public sealed class PrefetcherTests
{
    private static MetaBatch Batch(long i)
    {
        var t = Torch.From(new float[] { i });
        return new MetaBatch(t, Torch.From(new long[] { i }), Torch.From(new float[] { -i }), Torch.From(new long[] { -i }));
    }

    [Fact]
    public void HandsOutBatchesInOrderFromTheStartIndex()
    {
        using var p = new Prefetcher(Batch, 5, depth: 2);
        for (long i = 5; i < 30; i++)
        {
            Assert.Equal(i, p.NextIndex);
            using var b = p.Next();
            Assert.Equal(i, b.SupportY.ToArray<long>()[0]);
        }
    }

    [Fact]
    public void WorksAheadAndDisposalFreesWhatWasNotTaken()
    {
        var made = new System.Collections.Concurrent.ConcurrentQueue<MetaBatch>();
        var p = new Prefetcher(i => { var b = Batch(i); made.Enqueue(b); return b; }, 0, depth: 3);
        var first = p.Next();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (p.Ready < 3 && DateTime.UtcNow < deadline) Thread.Sleep(5);
        Assert.Equal(3, p.Ready);
        p.Dispose();
        Assert.False(first.SupportX.IsDisposed); // the consumer's
        Assert.All(made.Where(b => b != first), b => Assert.True(b.SupportX.IsDisposed && b.QueryY.IsDisposed));
        first.Dispose();
        Assert.Throws<ObjectDisposedException>(() => p.Next());
    }

    [Fact]
    public void ProducerErrorsReachTheConsumerInOrder()
    {
        using var p = new Prefetcher(i => i == 3 ? throw new DataException($"broken batch {i}") : Batch(i), 0);
        for (var i = 0; i < 3; i++) p.Next().Dispose();
        var e = Assert.Throws<DataException>(() => p.Next());
        Assert.Equal("broken batch 3", e.Message);
    }

    [Fact]
    public void TensorsMadeOnThePrefetchThreadSurviveTheConsumersScope()
    {
        using var p = new Prefetcher(Batch, 0);
        MetaBatch b;
        using (Torch.NewScope()) b = p.Next();
        Assert.False(b.SupportX.IsDisposed);
        b.Dispose();
        Assert.True(b.SupportX.IsDisposed);
    }
}
