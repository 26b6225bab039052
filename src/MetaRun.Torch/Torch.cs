using System.Runtime.InteropServices;
using static LibTorch.Native;

namespace LibTorch;

/// <summary>Tensor creation, autograd, seeding and library facts.</summary>
public static unsafe class Torch
{
    public static DisposeScope NewScope() => new();

    /// <summary>The innermost open scope of this thread, if any.</summary>
    public static DisposeScope? CurrentScope => DisposeScope.Current;

    /// <summary>Native tensors currently alive in this process (for leak checks).</summary>
    public static long LiveTensors => mr_live_tensors();

    public static string LibTorchVersion => Marshal.PtrToStringUTF8(mr_torch_version())!;

    public static int CudaDeviceCount { get { var n = mr_cuda_device_count(); Check(n); return n; } }
    public static bool CudaAvailable => CudaDeviceCount > 0;

    /// <summary>Whether this libtorch was built with CUDA (its CUDA part is loaded), whether or not a GPU is visible.</summary>
    public static bool CudaBuilt => mr_cuda_built() == 1;

    /// <summary>Why CUDA cannot be used here (it differs for a CPU-only libtorch and a CUDA one without a GPU); null where it can.</summary>
    public static string? CudaUnavailableReason => CudaAvailable ? null
        : CudaBuilt ? "this CUDA libtorch sees no GPU (check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES), or set device: cpu"
        : $"this libtorch ({LibTorchVersion}) is CPU-only: rebuild the native library against a CUDA libtorch (the bundle: ./install.sh " +
          "with a CUDA PyTorch's Python active, or METARUN_LIBTORCH=/path/to/libtorch; see docs/gpu.md), or set device: cpu";

    public static int Threads
    {
        get => mr_get_num_threads();
        set => Check(mr_set_num_threads(value));
    }

    /// <summary>
    /// Gives the calling thread <paramref name="n"/> intra-op threads. <see cref="Threads"/> reaches
    /// other threads only at their first parallel op: a pool thread that first worked under another
    /// setting keeps that count (and splits its sums differently) until told.
    /// </summary>
    public static void UseThreadsOnThisThread(int n) => Check(mr_set_thread_num_threads(n));

    /// <summary>OpenBLAS's thread count, which <see cref="Threads"/> sets too; null where libtorch uses another BLAS.</summary>
    public static int? BlasThreads => mr_blas_threads() is var n and >= 0 ? n : null;

    /// <summary>Seeds libtorch's default generators (CPU and every CUDA device).</summary>
    public static void ManualSeed(ulong seed) => Check(mr_manual_seed(seed));

    /// <summary>Disables gradient recording on this thread until disposed.</summary>
    public static GradMode NoGrad() => new(false);
    public static GradMode EnableGrad() => new(true);

    // ---- creation ----
    private delegate IntPtr Factory(long* shape, int n);
    private static Tensor Create(ReadOnlySpan<long> shape, Factory f)
    {
        fixed (long* p = shape) return new Tensor(f(p, shape.Length));
    }

    public static Tensor Empty(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return Create(shape, (p, n) => mr_empty(p, n, (int)dtype, (int)d.Type, d.Index));
    }

    public static Tensor Full(long[] shape, double value, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return Create(shape, (p, n) => mr_full(p, n, value, (int)dtype, (int)d.Type, d.Index));
    }

    public static Tensor Zeros(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null) => Full(shape, 0, dtype, device);
    public static Tensor Ones(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null) => Full(shape, 1, dtype, device);
    public static Tensor Scalar(double value, ScalarType dtype = ScalarType.Float32, Device? device = null) => Full([], value, dtype, device);

    public static Tensor Randn(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null, Generator? generator = null)
    {
        var d = device ?? Device.Cpu;
        var g = generator?.Handle ?? IntPtr.Zero;
        return Create(shape, (p, n) => mr_randn(p, n, (int)dtype, (int)d.Type, d.Index, g));
    }

    /// <summary>Uniform on [0, 1).</summary>
    public static Tensor Rand(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null, Generator? generator = null)
    {
        var d = device ?? Device.Cpu;
        var g = generator?.Handle ?? IntPtr.Zero;
        return Create(shape, (p, n) => mr_rand(p, n, (int)dtype, (int)d.Type, d.Index, g));
    }

    /// <summary>Integers uniform on [low, high).</summary>
    public static Tensor RandInt(long low, long high, long[] shape, ScalarType dtype = ScalarType.Int64, Device? device = null, Generator? generator = null)
    {
        var d = device ?? Device.Cpu;
        var g = generator?.Handle ?? IntPtr.Zero;
        return Create(shape, (p, n) => mr_randint(low, high, p, n, (int)dtype, (int)d.Type, d.Index, g));
    }

    public static Tensor Arange(double start, double end, double step = 1, ScalarType dtype = ScalarType.Int64, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        return new Tensor(mr_arange(start, end, step, (int)dtype, (int)d.Type, d.Index));
    }

    public static Tensor Arange(long end, ScalarType dtype = ScalarType.Int64) => Arange(0, end, 1, dtype);

    /// <summary>Copies managed elements into a new CPU tensor of the given shape.</summary>
    public static Tensor From<T>(ReadOnlySpan<T> data, params long[] shape) where T : unmanaged
    {
        var dtype = typeof(T) == typeof(float) ? ScalarType.Float32
            : typeof(T) == typeof(double) ? ScalarType.Float64
            : typeof(T) == typeof(long) ? ScalarType.Int64
            : typeof(T) == typeof(int) ? ScalarType.Int32
            : typeof(T) == typeof(byte) ? ScalarType.UInt8
            : typeof(T) == typeof(bool) ? ScalarType.Bool
            : throw new NotSupportedException($"no tensor dtype for {typeof(T).Name}");
        if (shape.Length == 0) shape = [data.Length];
        fixed (T* d = data) return FromBytes(new ReadOnlySpan<byte>(d, data.Length * sizeof(T)), shape, dtype);
    }

    public static Tensor From<T>(T[] data, params long[] shape) where T : unmanaged => From((ReadOnlySpan<T>)data, shape);

    /// <summary>Copies raw little-endian element bytes into a new CPU tensor.</summary>
    public static Tensor FromBytes(ReadOnlySpan<byte> bytes, long[] shape, ScalarType dtype)
    {
        fixed (byte* d = bytes)
        fixed (long* s = shape)
            return new Tensor(mr_from_data(d, bytes.Length, s, shape.Length, (int)dtype));
    }

    // ---- joining ----
    private delegate IntPtr JoinOp(IntPtr* hs, int n, long dim);
    private static Tensor Join(IReadOnlyList<Tensor> ts, long dim, JoinOp op)
    {
        var hs = new IntPtr[ts.Count];
        for (var i = 0; i < hs.Length; i++) hs[i] = ts[i].Handle;
        fixed (IntPtr* p = hs) return new Tensor(op(p, hs.Length, dim));
    }

    public static Tensor Cat(IReadOnlyList<Tensor> tensors, long dim = 0) => Join(tensors, dim, mr_cat);
    public static Tensor Stack(IReadOnlyList<Tensor> tensors, long dim = 0) => Join(tensors, dim, mr_stack);
    public static Tensor Where(Tensor condition, Tensor a, Tensor b) => new(mr_where(condition.Handle, a.Handle, b.Handle));

    // ---- autograd ----
    /// <summary>
    /// Gradients of <paramref name="outputs"/> with respect to <paramref name="inputs"/>. With
    /// <paramref name="createGraph"/> the results are themselves differentiable (second order,
    /// as MAML needs). An entry is null for an input the outputs do not depend on (allowUnused).
    /// </summary>
    public static Tensor?[] Grad(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor> inputs, IReadOnlyList<Tensor>? gradOutputs = null,
        bool createGraph = false, bool? retainGraph = null, bool allowUnused = false)
    {
        var o = outputs.Select(t => t.Handle).ToArray();
        var i = inputs.Select(t => t.Handle).ToArray();
        var g = gradOutputs?.Select(t => t.Handle).ToArray();
        var r = new IntPtr[i.Length];
        fixed (IntPtr* po = o)
        fixed (IntPtr* pi = i)
        fixed (IntPtr* pg = g)
        fixed (IntPtr* pr = r)
        {
            Check(mr_autograd_grad(po, o.Length, g == null ? null : pg, pi, i.Length, (retainGraph ?? createGraph) ? 1 : 0,
                createGraph ? 1 : 0, allowUnused ? 1 : 0, pr));
        }
        var result = new Tensor?[r.Length];
        for (var k = 0; k < r.Length; k++) result[k] = r[k] == IntPtr.Zero ? null : new Tensor(r[k]);
        return result;
    }

    public static Tensor Grad(Tensor output, Tensor input, bool createGraph = false) =>
        Grad([output], [input], createGraph: createGraph)[0] ?? throw new TorchException("the output does not depend on the input");
}

/// <summary>Sets gradient recording on this thread and restores the previous mode when disposed.</summary>
public readonly struct GradMode : IDisposable
{
    private readonly bool previous;
    internal GradMode(bool enabled) => previous = mr_set_grad_enabled(enabled ? 1 : 0) == 1;
    public void Dispose() => mr_set_grad_enabled(previous ? 1 : 0);
}
