using System.Runtime.InteropServices;
using System.Text;
using static LibTorch.Native;

namespace LibTorch;

internal static unsafe partial class Native
{
    [DllImport(Lib)] internal static extern IntPtr mr_store_new([MarshalAs(UnmanagedType.LPUTF8Str)] string host, int port, int isMaster, int worldSize, long timeoutMs, [MarshalAs(UnmanagedType.LPUTF8Str)] string prefix);
    [DllImport(Lib)] internal static extern void mr_store_free(IntPtr h);
    [DllImport(Lib)] internal static extern int mr_store_port(IntPtr h);
    [DllImport(Lib)] internal static extern int mr_store_set(IntPtr h, [MarshalAs(UnmanagedType.LPUTF8Str)] string key, byte* data, long n);
    [DllImport(Lib)] internal static extern long mr_store_get(IntPtr h, [MarshalAs(UnmanagedType.LPUTF8Str)] string key, out IntPtr buffer);
    [DllImport(Lib)] internal static extern long mr_store_add(IntPtr h, [MarshalAs(UnmanagedType.LPUTF8Str)] string key, long delta);
    [DllImport(Lib)] internal static extern int mr_store_check(IntPtr h, IntPtr* keys, int n);
    [DllImport(Lib)] internal static extern int mr_store_wait(IntPtr h, IntPtr* keys, int n, long timeoutMs);

    [DllImport(Lib)] internal static extern int mr_nccl_available();
    [DllImport(Lib)] internal static extern IntPtr mr_pg_gloo_new(IntPtr store, int rank, int size, long timeoutMs);
    [DllImport(Lib)] internal static extern IntPtr mr_pg_nccl_new(IntPtr store, int rank, int size, long timeoutMs);
    [DllImport(Lib)] internal static extern void mr_pg_free(IntPtr h);
    [DllImport(Lib)] internal static extern int mr_pg_allreduce_sum(IntPtr h, IntPtr* ts, int n);
    [DllImport(Lib)] internal static extern int mr_pg_broadcast(IntPtr h, IntPtr* ts, int n, int root);
    [DllImport(Lib)] internal static extern IntPtr mr_pg_allgather(IntPtr h, IntPtr t);
    [DllImport(Lib)] internal static extern int mr_pg_barrier(IntPtr h);
}

/// <summary>
/// libtorch's c10d TCPStore: the rendezvous point of a distributed run and a small key/value
/// store every rank can read. The master serves it from inside its own process, so the master's
/// store must be disposed last (after a final barrier).
/// </summary>
public sealed unsafe class TcpStore : IDisposable
{
    private IntPtr handle;

    private TcpStore(IntPtr h, string host, TimeSpan timeout)
    {
        handle = h;
        Host = host;
        Timeout = timeout;
    }

    public string Host { get; }
    public TimeSpan Timeout { get; }

    /// <summary>
    /// The master binds <paramref name="host"/>:<paramref name="port"/> (0: any free port, see
    /// <see cref="Port"/>); a client connects to it, retrying until <paramref name="timeout"/>.
    /// Gets and waits later in the run block at most that long too. With a <paramref name="prefix"/>
    /// every key (this binding's and the process groups') lives under it.
    /// </summary>
    public static TcpStore Create(string host, int port, bool isMaster, int worldSize, TimeSpan timeout, string prefix = "")
    {
        var h = mr_store_new(host, port, isMaster ? 1 : 0, worldSize, (long)timeout.TotalMilliseconds, prefix);
        if (h == IntPtr.Zero)
        {
            var why = Marshal.PtrToStringUTF8(mr_last_error()) ?? "no message";
            throw new TorchException(isMaster
                ? $"cannot start the rendezvous store on {host}:{port}: {why}"
                : $"cannot reach the rendezvous store at {host}:{port} within {timeout.TotalSeconds:0.#} s: {why}");
        }
        return new TcpStore(h, host, timeout);
    }

    internal IntPtr Handle => handle != IntPtr.Zero ? handle : throw new ObjectDisposedException(nameof(TcpStore));

    /// <summary>The port the store listens on (the master's choice when it was created with port 0).</summary>
    public int Port => (int)Check((long)mr_store_port(Handle));

    public void Set(string key, ReadOnlySpan<byte> value)
    {
        fixed (byte* p = value) Check(mr_store_set(Handle, key, p, value.Length));
    }

    public void Set(string key, string value) => Set(key, Encoding.UTF8.GetBytes(value));

    /// <summary>The key's value, waiting for another rank to set it up to the store's timeout.</summary>
    public byte[] Get(string key)
    {
        var n = mr_store_get(Handle, key, out var buffer);
        if (n < 0) throw StoreError($"no value for '{key}' in the rendezvous store within {Timeout.TotalSeconds:0.#} s");
        try
        {
            return new ReadOnlySpan<byte>((void*)buffer, (int)n).ToArray();
        }
        finally
        {
            mr_buffer_free(buffer);
        }
    }

    public string GetString(string key) => Encoding.UTF8.GetString(Get(key));

    /// <summary>Adds to a counter (created at 0) and returns its new value.</summary>
    public long Add(string key, long delta) => Check(mr_store_add(Handle, key, delta));

    /// <summary>Whether every key is set now; never waits.</summary>
    public bool Contains(params string[] keys)
    {
        var r = WithKeys(keys, (p, n) => mr_store_check(Handle, p, n));
        Check(r);
        return r == 1;
    }

    /// <summary>Waits until every key is set; throws after <paramref name="timeout"/>.</summary>
    public void Wait(IReadOnlyList<string> keys, TimeSpan timeout)
    {
        if (WithKeys(keys, (p, n) => mr_store_wait(Handle, p, n, (long)timeout.TotalMilliseconds)) < 0)
            throw StoreError($"the keys {string.Join(", ", keys)} were not all set in the rendezvous store within {timeout.TotalSeconds:0.#} s");
    }

    private static TorchException StoreError(string what) =>
        new($"{what}: {Marshal.PtrToStringUTF8(mr_last_error()) ?? "no message"}");

    /// <summary>
    /// Publishes this rank's <paramref name="value"/> of <paramref name="what"/> and compares it with
    /// every other rank's (waiting up to the store's timeout for them). Every rank reaches the same
    /// verdict, so a mismatch stops them all; the message names the ranks that differ from rank 0.
    /// </summary>
    public void AgreeOn(string what, string value, int rank, int worldSize)
    {
        Set($"agree/{what}/{rank}", value);
        var values = new string[worldSize];
        for (var r = 0; r < worldSize; r++) values[r] = r == rank ? value : GetString($"agree/{what}/{r}");
        Set($"agree/{what}/read/{rank}", "1");
        var differ = Enumerable.Range(1, worldSize - 1).Where(r => values[r] != values[0]).ToList();
        if (differ.Count == 0) return;
        // Rank 0 serves the store: it stays until every rank has read the values, so each one
        // names the disagreement instead of a store that vanished under it.
        if (rank == 0)
            for (var r = 1; r < worldSize; r++)
            {
                try { GetString($"agree/{what}/read/{r}"); }
                catch (TorchException) { }
            }
        throw new TorchException(
            $"the ranks disagree on the {what}: rank 0 has {values[0]}, " +
            string.Join(", ", differ.Select(r => $"rank {r} has {values[r]}")));
    }

    private delegate int KeysCall(IntPtr* keys, int n);

    private static int WithKeys(IReadOnlyList<string> keys, KeysCall call)
    {
        var ptrs = new IntPtr[keys.Count];
        try
        {
            for (var i = 0; i < ptrs.Length; i++) ptrs[i] = Marshal.StringToCoTaskMemUTF8(keys[i]);
            fixed (IntPtr* p = ptrs) return call(p, ptrs.Length);
        }
        finally
        {
            foreach (var p in ptrs) Marshal.FreeCoTaskMem(p);
        }
    }

    public void Dispose()
    {
        var h = handle;
        if (h == IntPtr.Zero) return;
        handle = IntPtr.Zero;
        mr_store_free(h);
    }
}

public enum CollectiveBackend
{
    /// <summary>Gloo over TCP, CPU tensors.</summary>
    Gloo,
    /// <summary>NCCL, CUDA tensors, one GPU per rank; only in a build against a CUDA libtorch with NCCL.</summary>
    Nccl,
}

/// <summary>
/// A c10d process group: the ranks of one run and the collectives between them. Every collective
/// blocks until it is done or until the group's timeout, and then throws: a dead peer or a hung
/// one surfaces as a <see cref="TorchException"/> here, never as a hang.
/// </summary>
public sealed unsafe class ProcessGroup : IDisposable
{
    private IntPtr handle;

    private ProcessGroup(IntPtr h, CollectiveBackend backend, int rank, int worldSize, TimeSpan timeout, Device device)
    {
        handle = h;
        Device = device;
        Backend = backend;
        Rank = rank;
        WorldSize = worldSize;
        Timeout = timeout;
    }

    /// <summary>Whether this build can create NCCL groups (a CUDA libtorch with NCCL headers at build time).</summary>
    public static bool NcclAvailable => mr_nccl_available() == 1;

    public CollectiveBackend Backend { get; }
    public int Rank { get; }
    public int WorldSize { get; }
    public TimeSpan Timeout { get; }

    /// <summary>Where this rank's collective tensors live: the CPU for Gloo, its own GPU for NCCL.</summary>
    public Device Device { get; }

    /// <summary>
    /// Joins the group of <paramref name="worldSize"/> ranks meeting at <paramref name="store"/>:
    /// returns once all have joined, or throws after <paramref name="timeout"/>.
    /// </summary>
    public static ProcessGroup Create(CollectiveBackend backend, TcpStore store, int rank, int worldSize, TimeSpan timeout, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        if ((backend == CollectiveBackend.Nccl) != (d.Type == DeviceType.Cuda))
            throw new ArgumentException($"the {backend} backend cannot work on {d}: Gloo takes CPU tensors here, NCCL CUDA ones");
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), "the world size must be at least 1");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is outside 0..{worldSize - 1}");
        var ms = (long)timeout.TotalMilliseconds;
        var h = backend == CollectiveBackend.Nccl
            ? mr_pg_nccl_new(store.Handle, rank, worldSize, ms)
            : mr_pg_gloo_new(store.Handle, rank, worldSize, ms);
        if (h == IntPtr.Zero)
        {
            var why = Marshal.PtrToStringUTF8(mr_last_error()) ?? "no message";
            throw new TorchException($"rank {rank} of {worldSize} could not join the {backend} process group within {timeout.TotalSeconds:0.#} s: {why}");
        }
        return new ProcessGroup(h, backend, rank, worldSize, timeout, d);
    }

    internal IntPtr Handle => handle != IntPtr.Zero ? handle : throw new ObjectDisposedException(nameof(ProcessGroup));

    /// <summary>Sums every tensor across ranks, in place, in one collective.</summary>
    public void AllReduceSum(IReadOnlyList<Tensor> tensors)
    {
        var hs = Handles(tensors);
        fixed (IntPtr* p = hs) Collective("all-reduce", mr_pg_allreduce_sum(Handle, p, hs.Length));
    }

    /// <summary>Overwrites every tensor with <paramref name="root"/>'s.</summary>
    public void Broadcast(IReadOnlyList<Tensor> tensors, int root = 0)
    {
        var hs = Handles(tensors);
        fixed (IntPtr* p = hs) Collective("broadcast", mr_pg_broadcast(Handle, p, hs.Length, root));
    }

    /// <summary>Every rank's tensor (one shape on all ranks) stacked in rank order: [world, ...].</summary>
    public Tensor AllGather(Tensor tensor)
    {
        var h = mr_pg_allgather(Handle, tensor.Handle);
        if (h == IntPtr.Zero) Collective("all-gather", -1);
        return new Tensor(h);
    }

    /// <summary>Every rank's values (one length on all ranks), indexed by rank.</summary>
    public double[][] AllGather(double[] values)
    {
        using var scope = new DisposeScope();
        var mine = Torch.From(values);
        if (Device.Type != DeviceType.Cpu) mine = mine.To(Device);
        var all = AllGather(mine).To(Device.Cpu, ScalarType.Float64).ToArray<double>();
        var result = new double[WorldSize][];
        for (var r = 0; r < WorldSize; r++) result[r] = all.AsSpan(r * values.Length, values.Length).ToArray();
        return result;
    }

    public void Barrier() => Collective("barrier", mr_pg_barrier(Handle));

    private void Collective(string what, int status)
    {
        if (status >= 0) return;
        var why = Marshal.PtrToStringUTF8(mr_last_error()) ?? "no message";
        throw new TorchException($"{what} failed on rank {Rank} of {WorldSize} (timeout {Timeout.TotalSeconds:0.#} s): {why}");
    }

    private static IntPtr[] Handles(IReadOnlyList<Tensor> tensors)
    {
        var hs = new IntPtr[tensors.Count];
        for (var i = 0; i < hs.Length; i++) hs[i] = tensors[i].Handle;
        return hs;
    }

    public void Dispose()
    {
        var h = handle;
        if (h == IntPtr.Zero) return;
        handle = IntPtr.Zero;
        mr_pg_free(h);
    }
}
