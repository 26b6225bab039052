using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Data;

namespace MetaRun.Training;

/// <summary>
/// A meta-batch's tasks on worker threads, shared by the outer step and evaluation. Each task
/// runs inside its own dispose scope; results are kept per task, so a caller that combines them
/// in task order gets the same numbers at any worker count.
/// </summary>
public static class TaskWorkers
{
    /// <summary>The meta-batch's episodes on <paramref name="device"/>, one per task, as views of the batch's tensors.</summary>
    public static Episode[] Episodes(MetaBatch batch, Device device)
    {
        var sx = batch.SupportX.To(device);
        var sy = batch.SupportY.To(device);
        var qx = batch.QueryX.To(device);
        var qy = batch.QueryY.To(device);
        return Enumerable.Range(0, batch.Tasks).Select(i => new Episode(sx[i], sy[i], qx[i], qy[i])).ToArray();
    }

    /// <summary>
    /// The meta-batch cut into runs of consecutive tasks, as even as possible, none longer than
    /// <paramref name="tasksPerRun"/> (0: one run of all), each one episode with a task dimension on
    /// <paramref name="device"/>.
    /// </summary>
    public static Episode[] Runs(MetaBatch batch, Device device, int tasksPerRun)
    {
        var n = batch.Tasks;
        var runs = tasksPerRun <= 0 ? 1 : (n + tasksPerRun - 1) / tasksPerRun;
        var (sx, sy, qx, qy) = (batch.SupportX.To(device), batch.SupportY.To(device), batch.QueryX.To(device), batch.QueryY.To(device));
        return [.. Enumerable.Range(0, runs).Select(r =>
        {
            var (start, end) = ((long)r * n / runs, (long)(r + 1) * n / runs);
            var size = end - start;
            return new Episode(sx.Narrow(0, start, size), sy.Narrow(0, start, size), qx.Narrow(0, start, size), qy.Narrow(0, start, size));
        })];
    }

    /// <summary>Runs body(0..n−1) on up to <paramref name="workers"/> threads, each task inside its own dispose scope and with the caller's intra-op thread count.</summary>
    public static void ForEach(int n, int workers, Action<int> body)
    {
        if (workers <= 1 || n <= 1)
        {
            for (var i = 0; i < n; i++)
            {
                using var scope = Torch.NewScope();
                body(i);
            }
            return;
        }
        var threads = Torch.Threads;
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = workers }, i =>
        {
            Torch.UseThreadsOnThisThread(threads);
            using var scope = Torch.NewScope();
            body(i);
        });
    }
}
