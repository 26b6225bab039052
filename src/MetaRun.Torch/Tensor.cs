using System.Runtime.InteropServices;
using static LibTorch.Native;

namespace LibTorch;

/// <summary>
/// A libtorch tensor. It owns one native handle, freed by <see cref="Dispose"/> or by the
/// <see cref="DisposeScope"/> that was open when it was created; never by the garbage collector.
/// </summary>
public sealed unsafe partial class Tensor : IDisposable
{
    private IntPtr handle;
    private long[]? shape;

    internal DisposeScope? Scope;

    internal Tensor(IntPtr h)
    {
        handle = Check(h);
        DisposeScope.Current?.Attach(this);
    }

    internal IntPtr Handle => handle != IntPtr.Zero ? handle : throw new ObjectDisposedException(nameof(Tensor), "the tensor was already disposed");

    public bool IsDisposed => handle == IntPtr.Zero;

    public void Dispose()
    {
        var h = handle;
        if (h == IntPtr.Zero) return;
        handle = IntPtr.Zero;
        mr_free(h);
    }

    /// <summary>Moves this tensor from its scope to the enclosing one (or to no scope: the caller then owns it).</summary>
    public Tensor MoveToOuterScope()
    {
        var outer = DisposeScope.NearestOpen(Scope?.Parent);
        Scope = null;
        outer?.Attach(this);
        return this;
    }

    /// <summary>Takes this tensor out of every scope: the caller must dispose it.</summary>
    public Tensor DetachFromScope()
    {
        Scope = null;
        return this;
    }

    // ---- metadata ----
    public long[] Shape
    {
        get
        {
            if (shape != null) return shape;
            var n = mr_ndim(Handle);
            Check(n);
            var s = new long[n];
            fixed (long* p = s) Check(mr_shape(Handle, p));
            return shape = s;
        }
    }

    public int Dim => Shape.Length;
    public long Size(int dim) => Shape[dim < 0 ? dim + Dim : dim];
    public long NumElements { get { long n = 1; foreach (var d in Shape) n *= d; return n; } }

    public ScalarType DType
    {
        get { var d = mr_dtype(Handle); Check(d); return (ScalarType)d; }
    }

    public Device Device
    {
        get { Check(mr_device(Handle, out var t, out var i)); return new Device((DeviceType)t, i); }
    }

    public bool RequiresGrad
    {
        get { var r = mr_requires_grad(Handle); Check(r); return r == 1; }
        set => Check(mr_set_requires_grad(Handle, value ? 1 : 0));
    }

    public Tensor RequiresGrad_(bool on = true) { RequiresGrad = on; return this; }

    /// <summary>The gradient accumulated by <see cref="Backward"/>, or null.</summary>
    public Tensor? Grad
    {
        get { var g = mr_grad_of(Handle); if (g == IntPtr.Zero) { if (mr_last_error() != IntPtr.Zero) ThrowLastError(); return null; } return new Tensor(g); }
    }

    public void ZeroGrad() => Check(mr_zero_grad(Handle));

    public override string ToString() => $"Tensor[{string.Join(", ", Shape)}] {DType.Name()} {Device}";

    // ---- host memory ----
    public void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        fixed (T* p = destination) Check(mr_copy_to_host(Handle, p, (long)destination.Length * sizeof(T)));
    }

    public T[] ToArray<T>() where T : unmanaged
    {
        var size = DType.ElementSize();
        if (size != sizeof(T)) throw new InvalidOperationException($"cannot read {DType.Name()} elements as {typeof(T).Name}");
        var a = new T[NumElements];
        CopyTo<T>(a);
        return a;
    }

    public byte[] ToBytes()
    {
        var a = new byte[NumElements * DType.ElementSize()];
        fixed (byte* p = a) Check(mr_copy_to_host(Handle, p, a.Length));
        return a;
    }

    public double Item()
    {
        Check(mr_item(Handle, out var v));
        return v;
    }

    public float ItemFloat() => (float)Item();

    // ---- conversion ----
    public Tensor To(Device device) => new(mr_to(Handle, -1, (int)device.Type, device.Index, 0));
    public Tensor To(ScalarType dtype) => new(mr_to(Handle, (int)dtype, -1, 0, 0));
    public Tensor To(Device device, ScalarType dtype) => new(mr_to(Handle, (int)dtype, (int)device.Type, device.Index, 0));
    public Tensor Clone() => new(mr_clone(Handle));
    public Tensor Detach() => new(mr_detach(Handle));
    public Tensor Contiguous() => new(mr_contiguous(Handle));
    /// <summary>A second handle to the same tensor (shared storage and autograd identity).</summary>
    public Tensor Alias() => new(mr_alias(Handle));

    // ---- shapes ----
    private delegate IntPtr ShapeOp(IntPtr h, long* s, int n);
    private Tensor WithShape(ShapeOp op, ReadOnlySpan<long> s)
    {
        fixed (long* p = s) return new Tensor(op(Handle, p, s.Length));
    }

    public Tensor View(params long[] s) => WithShape(mr_view, s);
    public Tensor Reshape(params long[] s) => WithShape(mr_reshape, s);
    public Tensor Permute(params long[] dims) => WithShape(mr_permute, dims);
    public Tensor Expand(params long[] s) => WithShape(mr_expand, s);
    public Tensor Repeat(params long[] s) => WithShape(mr_repeat, s);
    public Tensor Transpose(long a, long b) => new(mr_transpose(Handle, a, b));
    public Tensor Flatten(long start = 0, long end = -1) => new(mr_flatten(Handle, start, end));
    public Tensor Unsqueeze(long dim) => new(mr_unsqueeze(Handle, dim));
    public Tensor Squeeze() => new(mr_squeeze(Handle, long.MinValue));
    public Tensor Squeeze(long dim) => new(mr_squeeze(Handle, dim));
    public Tensor Narrow(long dim, long start, long length) => new(mr_narrow(Handle, dim, start, length));
    public Tensor IndexSelect(long dim, Tensor index) => new(mr_index_select(Handle, dim, index.Handle));
    /// <summary>The <paramref name="k"/>-th smallest value (1-based) along <paramref name="dim"/>.</summary>
    public Tensor KthValue(long k, long dim, bool keepDim = false) => new(mr_kthvalue(Handle, k, dim, keepDim ? 1 : 0));
    public Tensor Gather(long dim, Tensor index) => new(mr_gather(Handle, dim, index.Handle));
    /// <summary>Advanced indexing along the first dimension by an int64 or bool tensor.</summary>
    [System.Runtime.CompilerServices.IndexerName("At")]
    public Tensor this[Tensor index] => new(mr_index(Handle, index.Handle));
    [System.Runtime.CompilerServices.IndexerName("At")]
    public Tensor this[long i] => Narrow(0, i < 0 ? i + Size(0) : i, 1).Squeeze(0);

    // ---- elementwise ----
    private Tensor Unary(UnaryOp op)
    {
        NativeEnums.EnsureVerified();
        return new Tensor(mr_unary(Handle, (int)op));
    }

    public Tensor Neg() => Unary(UnaryOp.Neg);
    public Tensor Sqrt() => Unary(UnaryOp.Sqrt);
    public Tensor Exp() => Unary(UnaryOp.Exp);
    public Tensor Log() => Unary(UnaryOp.Log);
    public Tensor Abs() => Unary(UnaryOp.Abs);
    public Tensor Relu() => Unary(UnaryOp.Relu);
    public Tensor Sigmoid() => Unary(UnaryOp.Sigmoid);
    public Tensor Tanh() => Unary(UnaryOp.Tanh);
    public Tensor Sign() => Unary(UnaryOp.Sign);
    public Tensor Reciprocal() => Unary(UnaryOp.Reciprocal);
    public Tensor Square() => Unary(UnaryOp.Square);
    public Tensor Floor() => Unary(UnaryOp.Floor);
    public Tensor LogicalNot() => Unary(UnaryOp.LogicalNot);

    private static Tensor Binary(Tensor a, Tensor b, BinaryOp op)
    {
        NativeEnums.EnsureVerified();
        return new Tensor(mr_binary(a.Handle, b.Handle, (int)op));
    }

    private static Tensor Binary(Tensor a, double s, BinaryOp op, bool reversed = false)
    {
        NativeEnums.EnsureVerified();
        return new Tensor(mr_binary_scalar(a.Handle, s, (int)op, reversed ? 1 : 0));
    }

    public Tensor Add(Tensor other, double alpha = 1) => alpha == 1 ? Binary(this, other, BinaryOp.Add) : new Tensor(mr_add_scaled(Handle, other.Handle, alpha));
    public Tensor Pow(double exponent) => Binary(this, exponent, BinaryOp.Pow);
    public Tensor Pow(Tensor exponent) => Binary(this, exponent, BinaryOp.Pow);
    public Tensor MatMul(Tensor other) => Binary(this, other, BinaryOp.MatMul);
    public Tensor Maximum(Tensor other) => Binary(this, other, BinaryOp.Maximum);
    public Tensor Minimum(Tensor other) => Binary(this, other, BinaryOp.Minimum);
    public Tensor Eq(Tensor other) => Binary(this, other, BinaryOp.Eq);
    public Tensor Eq(double s) => Binary(this, s, BinaryOp.Eq);
    public Tensor Ne(Tensor other) => Binary(this, other, BinaryOp.Ne);
    public Tensor Ne(double s) => Binary(this, s, BinaryOp.Ne);
    public Tensor Lt(Tensor other) => Binary(this, other, BinaryOp.Lt);
    public Tensor Lt(double s) => Binary(this, s, BinaryOp.Lt);
    public Tensor Le(Tensor other) => Binary(this, other, BinaryOp.Le);
    public Tensor Le(double s) => Binary(this, s, BinaryOp.Le);
    public Tensor Gt(Tensor other) => Binary(this, other, BinaryOp.Gt);
    public Tensor Gt(double s) => Binary(this, s, BinaryOp.Gt);
    public Tensor Ge(Tensor other) => Binary(this, other, BinaryOp.Ge);
    public Tensor Ge(double s) => Binary(this, s, BinaryOp.Ge);
    public Tensor LogicalAnd(Tensor other) => Binary(this, other, BinaryOp.And);
    public Tensor LogicalOr(Tensor other) => Binary(this, other, BinaryOp.Or);

    public Tensor Clamp(double? min = null, double? max = null) =>
        new(mr_clamp(Handle, min ?? 0, max ?? 0, min.HasValue ? 1 : 0, max.HasValue ? 1 : 0));

    public static Tensor operator +(Tensor a, Tensor b) => Binary(a, b, BinaryOp.Add);
    public static Tensor operator -(Tensor a, Tensor b) => Binary(a, b, BinaryOp.Sub);
    public static Tensor operator *(Tensor a, Tensor b) => Binary(a, b, BinaryOp.Mul);
    public static Tensor operator /(Tensor a, Tensor b) => Binary(a, b, BinaryOp.Div);
    public static Tensor operator +(Tensor a, double s) => Binary(a, s, BinaryOp.Add);
    public static Tensor operator -(Tensor a, double s) => Binary(a, s, BinaryOp.Sub);
    public static Tensor operator *(Tensor a, double s) => Binary(a, s, BinaryOp.Mul);
    public static Tensor operator /(Tensor a, double s) => Binary(a, s, BinaryOp.Div);
    public static Tensor operator +(double s, Tensor a) => Binary(a, s, BinaryOp.Add, reversed: true);
    public static Tensor operator -(double s, Tensor a) => Binary(a, s, BinaryOp.Sub, reversed: true);
    public static Tensor operator *(double s, Tensor a) => Binary(a, s, BinaryOp.Mul, reversed: true);
    public static Tensor operator /(double s, Tensor a) => Binary(a, s, BinaryOp.Div, reversed: true);
    public static Tensor operator -(Tensor a) => a.Neg();
    public static Tensor operator <(Tensor a, Tensor b) => a.Lt(b);
    public static Tensor operator >(Tensor a, Tensor b) => a.Gt(b);
    public static Tensor operator <=(Tensor a, Tensor b) => a.Le(b);
    public static Tensor operator >=(Tensor a, Tensor b) => a.Ge(b);
    public static Tensor operator <(Tensor a, double s) => a.Lt(s);
    public static Tensor operator >(Tensor a, double s) => a.Gt(s);
    public static Tensor operator <=(Tensor a, double s) => a.Le(s);
    public static Tensor operator >=(Tensor a, double s) => a.Ge(s);

    // ---- in place (use under Torch.NoGrad for parameters) ----
    public Tensor CopyFrom(Tensor src) { Check(mr_copy_(Handle, src.Handle)); return this; }
    public Tensor Fill_(double v) { Check(mr_fill_(Handle, v)); return this; }
    public Tensor Add_(Tensor other, double alpha = 1) { Check(mr_add_(Handle, other.Handle, alpha)); return this; }
    public Tensor Mul_(double s) { Check(mr_mul_scalar_(Handle, s)); return this; }

    // ---- reductions ----
    private Tensor Reduce(ReduceOp op, long[] dims, bool keepDim)
    {
        NativeEnums.EnsureVerified();
        fixed (long* p = dims) return new Tensor(mr_reduce(Handle, (int)op, p, dims.Length, keepDim ? 1 : 0));
    }

    public Tensor Sum() => Reduce(ReduceOp.Sum, [], false);
    public Tensor Sum(long dim, bool keepDim = false) => Reduce(ReduceOp.Sum, [dim], keepDim);
    public Tensor Sum(long[] dims, bool keepDim = false) => Reduce(ReduceOp.Sum, dims, keepDim);
    public Tensor Mean() => Reduce(ReduceOp.Mean, [], false);
    public Tensor Mean(long dim, bool keepDim = false) => Reduce(ReduceOp.Mean, [dim], keepDim);
    public Tensor Mean(long[] dims, bool keepDim = false) => Reduce(ReduceOp.Mean, dims, keepDim);
    /// <summary>Variance; unbiased (n − 1) by default, as in PyTorch.</summary>
    public Tensor Var(bool unbiased = true) => Reduce(unbiased ? ReduceOp.Var : ReduceOp.VarBiased, [], false);
    public Tensor Var(long dim, bool unbiased = true, bool keepDim = false) => Reduce(unbiased ? ReduceOp.Var : ReduceOp.VarBiased, [dim], keepDim);
    public Tensor Std() => Reduce(ReduceOp.Std, [], false);
    public Tensor Std(long dim, bool keepDim = false) => Reduce(ReduceOp.Std, [dim], keepDim);
    public Tensor Max() => Reduce(ReduceOp.Amax, [], false);
    public Tensor Max(long dim, bool keepDim = false) => Reduce(ReduceOp.Amax, [dim], keepDim);
    public Tensor Min() => Reduce(ReduceOp.Amin, [], false);
    public Tensor Min(long dim, bool keepDim = false) => Reduce(ReduceOp.Amin, [dim], keepDim);
    public Tensor ArgMax(long dim, bool keepDim = false) => new(mr_argmax(Handle, dim, keepDim ? 1 : 0));
    public Tensor ArgMin(long dim, bool keepDim = false) => new(mr_argmin(Handle, dim, keepDim ? 1 : 0));

    // ---- autograd ----
    public void Backward(Tensor? gradient = null, bool retainGraph = false, bool createGraph = false) =>
        Check(mr_backward(Handle, gradient?.Handle ?? IntPtr.Zero, retainGraph ? 1 : 0, createGraph ? 1 : 0));
}
