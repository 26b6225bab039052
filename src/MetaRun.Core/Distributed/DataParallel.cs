using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using LibTorch;
using MetaRun.Config;
using MetaRun.Training;

namespace MetaRun.Distributed;

/// <summary>
/// A collective between ranks failed: a rank died, hung or stopped on its own error. The message
/// names that rank; every surviving rank exits with this error.
/// </summary>
public sealed class RankFailedException(string message, Exception? inner = null) : MetaRunException(ExitCodes.Failure, message, inner);

/// <summary>
/// One rank's view of a data-parallel run over libtorch's c10d: the rendezvous store, the process
/// group (Gloo on CPU, NCCL on a GPU), its share of every range of episodes, and the collectives
/// the trainer needs, each turned into an error that names the failed rank.
/// </summary>
public sealed class DataParallel : IDisposable
{
    private readonly TcpStore store;
    private readonly ProcessGroup group;

    private DataParallel(Launch launch, TcpStore store, ProcessGroup group)
    {
        (Launch, this.store, this.group) = (launch, store, group);
    }

    public Launch Launch { get; }
    public int Rank => Launch.Rank;
    public int WorldSize => Launch.WorldSize;
    public TimeSpan Timeout => group.Timeout;
    public CollectiveBackend Backend => group.Backend;

    /// <summary>
    /// Meets the other ranks: rank 0 serves the store, every rank checks that all hold the same
    /// <paramref name="configDigest"/>, then joins the process group. Rendezvous failures (port
    /// taken, master unreachable, a rank missing, mismatched configs) are exit 2 with the cause.
    /// </summary>
    public static DataParallel Join(Launch launch, string configDigest, Device device, TimeSpan timeout)
    {
        var backend = device.Type == DeviceType.Cuda ? CollectiveBackend.Nccl : CollectiveBackend.Gloo;
        if (backend == CollectiveBackend.Nccl && !ProcessGroup.NcclAvailable)
            throw new ConfigException("distributed training on CUDA needs NCCL, and this MetaRun was built against a libtorch without it (see docs/distributed.md)");
        TcpStore? store = null;
        try
        {
            store = TcpStore.Create(launch.MasterAddr, launch.MasterPort, launch.ServesStore, launch.WorldSize, timeout, launch.StorePrefix);
            store.AgreeOn("config", configDigest, launch.Rank, launch.WorldSize);
            var group = ProcessGroup.Create(backend, store, launch.Rank, launch.WorldSize, timeout, device);
            return new DataParallel(launch, store, group);
        }
        catch (TorchException e)
        {
            store?.Dispose();
            throw new MetaRunException(ExitCodes.BadUsage, $"rendezvous of rank {launch.Rank} of {launch.WorldSize} at {launch.MasterAddr}:{launch.MasterPort} failed: {e.Message}", e);
        }
    }

    /// <summary>
    /// Joins the run the environment describes (see <see cref="Launch.FromEnvironment"/>), or
    /// returns null for a single-process run. Every rank must hold the same resolved config and
    /// the same <paramref name="purpose"/> (the command and its run folder), else all refuse.
    /// </summary>
    public static DataParallel? JoinIfLaunched(Launch? launch, RunConfig config, string purpose)
    {
        if (launch == null) return null;
        var digest = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(purpose + "\n" + ConfigLoader.ToYaml(config))))[..16].ToLowerInvariant();
        return Join(launch, digest, Experiment.PlanFor(config, launch).Device, TimeSpan.FromSeconds(config.Distributed.Timeout));
    }

    /// <summary>
    /// A value rank 0 decides (the run folder's name, with its timestamp) and every rank needs.
    /// If deciding fails on rank 0, the others fail with its message and exit code too.
    /// </summary>
    public string FromMaster(string key, Func<string> decide)
    {
        const string failed = "\0failed\0";
        if (Rank == 0)
        {
            try
            {
                var value = decide();
                store.Set("master/" + key, value);
                return value;
            }
            catch (Exception e)
            {
                var code = e is MetaRunException m ? m.ExitCode : ExitCodes.Failure;
                try { store.Set("master/" + key, $"{failed}{code}\0{e.Message}"); } catch (TorchException) { }
                throw;
            }
        }
        string got;
        try
        {
            got = store.GetString("master/" + key);
        }
        catch (TorchException e)
        {
            throw new RankFailedException($"rank {Rank} of {WorldSize}: waiting for rank 0's {key} failed: {e.Message}", e);
        }
        if (!got.StartsWith(failed, StringComparison.Ordinal)) return got;
        var parts = got[failed.Length..].Split('\0', 2);
        throw new MetaRunException(int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), $"rank 0 stopped: {parts[1]}");
    }

    /// <summary>
    /// This rank's contiguous slice of <paramref name="count"/> items starting at <paramref name="first"/>:
    /// episodes are a pure function of their index, so no rank needs another's data. The first
    /// count mod world ranks take one more.
    /// </summary>
    public (long First, int Count) Share(long first, int count) => Share(first, count, Rank, WorldSize);

    public static (long First, int Count) Share(long first, int count, int rank, int world)
    {
        var (q, r) = (count / world, count % world);
        return (first + (long)rank * q + Math.Min(rank, r), q + (rank < r ? 1 : 0));
    }

    /// <summary>
    /// Sums the gradients and the metric sums over all ranks in ONE collective, in place. A null
    /// gradient (a parameter the learner never touches) is null on every rank and is skipped.
    /// </summary>
    public double[] AllReduce(Tensor?[] gradients, double[] sums, string during)
    {
        using var scope = Torch.NewScope();
        var present = gradients.Where(g => g != null).Select(g => g!).ToList();
        // The metric sums ride in the gradients' dtype: a float64 tail would promote the whole
        // packed buffer and double the bytes on the wire, for logged figures that need no more.
        var metrics = Torch.From(sums).To(group.Device, present.Count > 0 ? present[0].DType : ScalarType.Float64);
        Guard(during, () => group.AllReduceSum([.. present, metrics]));
        return metrics.To(Device.Cpu, ScalarType.Float64).ToArray<double>();
    }

    /// <summary>Every rank's values concatenated in rank order; the ranks' lengths may differ.</summary>
    public double[] Gather(double[] mine, string during)
    {
        var lengths = Guard(during, () => group.AllGather([mine.Length]));
        var longest = (int)lengths.Max(l => l[0]);
        var padded = new double[longest];
        mine.CopyTo(padded, 0);
        var all = Guard(during, () => group.AllGather(padded));
        return all.SelectMany((values, r) => values.Take((int)lengths[r][0])).ToArray();
    }

    public void Barrier(string during) => Guard(during, group.Barrier);

    /// <summary>
    /// Tells the other ranks why this one stops (its own error, not a peer's), so their error
    /// names it; best effort, since the store may already be gone.
    /// </summary>
    public void ReportFailure(Exception e)
    {
        if (e is RankFailedException) return;
        try
        {
            store.Set($"error/{Rank}", e.Message);
        }
        catch (TorchException)
        {
        }
    }

    private void Guard(string during, Action body) => Guard(during, () => { body(); return 0; });

    private T Guard<T>(string during, Func<T> body)
    {
        try
        {
            return body();
        }
        catch (TorchException e)
        {
            throw Diagnose(during, e);
        }
    }

    /// <summary>
    /// Finds who broke the collective: every surviving rank says through the store that it is
    /// alive and saw the failure; a rank that stopped on its own error has left its message there;
    /// a rank that does neither within a short grace died or hung. Without the store, rank 0
    /// (which serves it) is the one gone.
    /// </summary>
    private RankFailedException Diagnose(string during, TorchException cause)
    {
        var what = $"rank {Rank} of {WorldSize}: {during} failed";
        var storeGone = Launch.LauncherHostsStore
            ? $"{what}: the launcher's rendezvous store at {Launch.MasterAddr}:{Launch.MasterPort} stopped responding"
            : $"{what}: rank 0, which hosts the rendezvous store, stopped responding (it died or hung)";
        try
        {
            store.Set($"saw/{Rank}", cause.Message);
        }
        catch (TorchException)
        {
            return new RankFailedException(storeGone, cause);
        }
        var grace = TimeSpan.FromSeconds(Math.Min(5, Timeout.TotalSeconds));
        var clock = Stopwatch.StartNew();
        var others = Enumerable.Range(0, WorldSize).Where(r => r != Rank).ToList();
        var errors = new Dictionary<int, string>();
        var silent = others;
        try
        {
            while (true)
            {
                foreach (var r in others)
                    if (!errors.ContainsKey(r) && store.Contains($"error/{r}")) errors[r] = store.GetString($"error/{r}");
                silent = others.Where(r => !errors.ContainsKey(r) && !store.Contains($"saw/{r}")).ToList();
                if (silent.Count == 0 || clock.Elapsed > grace) break;
                Thread.Sleep(100);
            }
        }
        catch (TorchException)
        {
            return new RankFailedException(storeGone, cause);
        }
        if (errors.Count > 0)
            return new RankFailedException($"{what}: " + string.Join("; ", errors.Select(kv => $"rank {kv.Key} stopped: {kv.Value}")), cause);
        if (silent.Count > 0)
            return new RankFailedException($"{what}: {Ranks(silent)} stopped responding (it died or hung)", cause);
        return new RankFailedException($"{what}: {cause.Message}", cause);
    }

    private static string Ranks(List<int> ranks) => ranks.Count == 1 ? $"rank {ranks[0]}" : "ranks " + string.Join(", ", ranks);

    /// <summary>Leaves the group. Rank 0's store ends with it, so a run ends with a barrier before this.</summary>
    public void Dispose()
    {
        group.Dispose();
        store.Dispose();
    }
}
