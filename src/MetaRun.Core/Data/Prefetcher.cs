using System.Collections.Concurrent;

namespace MetaRun.Data;

/// <summary>
/// Produces meta-batches start+1, start+2, … on a background thread, a few ahead of the
/// consumer, so sampling never stalls training. Batches come out in order; disposing stops the
/// producer and frees batches nobody took.
/// </summary>
public sealed class Prefetcher : IDisposable
{
    private readonly BlockingCollection<MetaBatch> ready;
    private readonly CancellationTokenSource stop = new();
    private readonly Thread worker;
    private Exception? failure;

    /// <param name="produce">Builds the meta-batch of a 0-based iteration index.</param>
    /// <param name="start">Iterations already done: the first batch produced is index <paramref name="start"/>.</param>
    public Prefetcher(Func<long, MetaBatch> produce, long start, int depth = 3)
    {
        ready = new BlockingCollection<MetaBatch>(depth);
        worker = new Thread(() =>
        {
            try
            {
                for (var i = start; !stop.IsCancellationRequested; i++) ready.Add(produce(i), stop.Token);
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                ready.CompleteAdding();
            }
        }) { IsBackground = true, Name = "metarun-prefetch" };
        worker.Start();
    }

    /// <summary>The next meta-batch; the caller disposes it. Rethrows the producer's error.</summary>
    public MetaBatch Next()
    {
        if (ready.TryTake(out var batch, Timeout.Infinite)) return batch;
        throw failure is MetaRunException m ? m : new DataException($"sampling failed: {failure?.Message ?? "prefetcher stopped"}", failure);
    }

    public void Dispose()
    {
        stop.Cancel();
        while (ready.TryTake(out var b)) b.Dispose();
        worker.Join();
        while (ready.TryTake(out var b)) b.Dispose();
        ready.Dispose();
        stop.Dispose();
    }
}
