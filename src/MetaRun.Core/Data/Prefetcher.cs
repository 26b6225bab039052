using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace MetaRun.Data;

/// <summary>
/// Keeps the next few meta-batches ready on a background thread: batch i is produce(i) for i =
/// start, start + 1, …, handed out by <see cref="Next"/> in that order, so the stream is the
/// same as calling produce directly. The tensors are made on the prefetch thread outside any
/// DisposeScope: the consumer owns each MetaBatch it takes and disposes it (or moves its tensors
/// into a scope with DisposeScope.Include). Disposing the prefetcher stops the thread and frees
/// the batches nobody took. An exception in produce is rethrown by the Next that would have
/// returned that batch. Dispose the prefetcher before the task family it samples.
/// </summary>
public sealed class Prefetcher : IDisposable
{
    private readonly Func<long, MetaBatch> produce;
    private readonly BlockingCollection<Item> ready;
    private readonly CancellationTokenSource stop = new();
    private readonly Thread thread;
    private bool disposed;

    private readonly record struct Item(long Index, MetaBatch? Batch, ExceptionDispatchInfo? Error);

    public Prefetcher(Func<long, MetaBatch> produce, long start, int depth = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(depth, 1);
        this.produce = produce;
        NextIndex = start;
        ready = new BlockingCollection<Item>(depth);
        thread = new Thread(() => Run(start)) { IsBackground = true, Name = "metarun-prefetch" };
        thread.Start();
    }

    /// <summary>The index of the batch the next call to <see cref="Next"/> returns.</summary>
    public long NextIndex { get; private set; }

    /// <summary>Batches produced and waiting.</summary>
    public int Ready => ready.Count;

    public MetaBatch Next()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        Item item;
        try
        {
            item = ready.Take();
        }
        catch (InvalidOperationException)
        {
            throw new InvalidOperationException("the prefetcher stopped after an error");
        }
        if (item.Error != null)
        {
            ready.CompleteAdding();
            item.Error.Throw();
        }
        NextIndex = item.Index + 1;
        return item.Batch!;
    }

    private void Run(long start)
    {
        var token = stop.Token;
        for (var i = start; !token.IsCancellationRequested; i++)
        {
            Item item;
            try
            {
                item = new Item(i, produce(i), null);
            }
            catch (Exception e)
            {
                item = new Item(i, null, ExceptionDispatchInfo.Capture(e));
            }
            try
            {
                ready.Add(item, token);
            }
            catch (Exception e) when (e is OperationCanceledException or InvalidOperationException)
            {
                item.Batch?.Dispose();
                return;
            }
            if (item.Error != null) return;
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        stop.Cancel();
        thread.Join();
        while (ready.TryTake(out var item)) item.Batch?.Dispose();
        ready.Dispose();
        stop.Dispose();
    }
}
