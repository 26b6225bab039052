using System.Runtime.InteropServices;

namespace LibTorch;

// The flat C ABI of native/ (libmetarun_native.so). Every call that can fail reports through
// its return value; Check turns that into a TorchException carrying libtorch's message.
internal static unsafe partial class Native
{
    private const string Lib = "metarun_native";

    internal static IntPtr Check(IntPtr handle)
    {
        if (handle == IntPtr.Zero) ThrowLastError();
        return handle;
    }

    internal static void Check(int status)
    {
        if (status < 0) ThrowLastError();
    }

    internal static long Check(long value)
    {
        if (value < 0) ThrowLastError();
        return value;
    }

    internal static void ThrowLastError()
    {
        var p = mr_last_error();
        throw new TorchException(p == IntPtr.Zero ? "native call failed without a message" : Marshal.PtrToStringUTF8(p)!);
    }

    [DllImport(Lib)] internal static extern IntPtr mr_last_error();
    [DllImport(Lib)] internal static extern void mr_free(IntPtr h);
    [DllImport(Lib)] internal static extern long mr_live_tensors();
    [DllImport(Lib)] internal static extern IntPtr mr_torch_version();
    [DllImport(Lib)] internal static extern int mr_cuda_built();
    [DllImport(Lib)] internal static extern int mr_cuda_device_count();
    [DllImport(Lib)] internal static extern int mr_set_num_threads(int n);
    [DllImport(Lib)] internal static extern int mr_get_num_threads();
    [DllImport(Lib)] internal static extern int mr_set_thread_num_threads(int n);
    [DllImport(Lib)] internal static extern int mr_blas_threads();
    [DllImport(Lib)] internal static extern int mr_set_grad_enabled(int enabled);
    [DllImport(Lib)] internal static extern int mr_manual_seed(ulong seed);

    [DllImport(Lib)] internal static extern IntPtr mr_generator_new(ulong seed, int dt, int di);
    [DllImport(Lib)] internal static extern void mr_generator_free(IntPtr g);
    [DllImport(Lib)] internal static extern IntPtr mr_generator_get_state(IntPtr g);
    [DllImport(Lib)] internal static extern int mr_generator_set_state(IntPtr g, IntPtr state);

    [DllImport(Lib)] internal static extern IntPtr mr_empty(long* shape, int n, int dtype, int dt, int di);
    [DllImport(Lib)] internal static extern IntPtr mr_full(long* shape, int n, double value, int dtype, int dt, int di);
    [DllImport(Lib)] internal static extern IntPtr mr_randn(long* shape, int n, int dtype, int dt, int di, IntPtr gen);
    [DllImport(Lib)] internal static extern IntPtr mr_rand(long* shape, int n, int dtype, int dt, int di, IntPtr gen);
    [DllImport(Lib)] internal static extern IntPtr mr_randint(long low, long high, long* shape, int n, int dtype, int dt, int di, IntPtr gen);
    [DllImport(Lib)] internal static extern IntPtr mr_arange(double start, double end, double step, int dtype, int dt, int di);
    [DllImport(Lib)] internal static extern IntPtr mr_from_data(void* data, long bytes, long* shape, int n, int dtype);

    [DllImport(Lib)] internal static extern IntPtr mr_to(IntPtr h, int dtype, int dt, int di, int copy);
    [DllImport(Lib)] internal static extern int mr_copy_to_host(IntPtr h, void* dst, long bytes);
    [DllImport(Lib)] internal static extern int mr_item(IntPtr h, out double value);
    [DllImport(Lib)] internal static extern int mr_ndim(IntPtr h);
    [DllImport(Lib)] internal static extern int mr_shape(IntPtr h, long* shape);
    [DllImport(Lib)] internal static extern int mr_dtype(IntPtr h);
    [DllImport(Lib)] internal static extern int mr_device(IntPtr h, out int type, out int index);
    [DllImport(Lib)] internal static extern int mr_requires_grad(IntPtr h);
    [DllImport(Lib)] internal static extern int mr_set_requires_grad(IntPtr h, int on);
    [DllImport(Lib)] internal static extern IntPtr mr_grad_of(IntPtr h);
    [DllImport(Lib)] internal static extern int mr_zero_grad(IntPtr h);

    [DllImport(Lib)] internal static extern IntPtr mr_view(IntPtr h, long* s, int n);
    [DllImport(Lib)] internal static extern IntPtr mr_reshape(IntPtr h, long* s, int n);
    [DllImport(Lib)] internal static extern IntPtr mr_permute(IntPtr h, long* s, int n);
    [DllImport(Lib)] internal static extern IntPtr mr_expand(IntPtr h, long* s, int n);
    [DllImport(Lib)] internal static extern IntPtr mr_repeat(IntPtr h, long* s, int n);
    [DllImport(Lib)] internal static extern IntPtr mr_transpose(IntPtr h, long a, long b);
    [DllImport(Lib)] internal static extern IntPtr mr_flatten(IntPtr h, long a, long b);
    [DllImport(Lib)] internal static extern IntPtr mr_unsqueeze(IntPtr h, long d);
    [DllImport(Lib)] internal static extern IntPtr mr_squeeze(IntPtr h, long d);
    [DllImport(Lib)] internal static extern IntPtr mr_narrow(IntPtr h, long d, long start, long len);
    [DllImport(Lib)] internal static extern IntPtr mr_index_select(IntPtr h, long d, IntPtr idx);
    [DllImport(Lib)] internal static extern IntPtr mr_gather(IntPtr h, long d, IntPtr idx);
    [DllImport(Lib)] internal static extern IntPtr mr_index(IntPtr h, IntPtr idx);
    [DllImport(Lib)] internal static extern IntPtr mr_cat(IntPtr* hs, int n, long d);
    [DllImport(Lib)] internal static extern IntPtr mr_stack(IntPtr* hs, int n, long d);
    [DllImport(Lib)] internal static extern IntPtr mr_contiguous(IntPtr h);
    [DllImport(Lib)] internal static extern IntPtr mr_clone(IntPtr h);
    [DllImport(Lib)] internal static extern IntPtr mr_detach(IntPtr h);
    [DllImport(Lib)] internal static extern IntPtr mr_alias(IntPtr h);

    [DllImport(Lib)] internal static extern int mr_enum_count([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    [DllImport(Lib)] internal static extern IntPtr mr_unary(IntPtr h, int op);
    [DllImport(Lib)] internal static extern IntPtr mr_binary(IntPtr a, IntPtr b, int op);
    [DllImport(Lib)] internal static extern IntPtr mr_binary_scalar(IntPtr a, double s, int op, int reversed);
    [DllImport(Lib)] internal static extern IntPtr mr_add_scaled(IntPtr a, IntPtr b, double alpha);
    [DllImport(Lib)] internal static extern IntPtr mr_clamp(IntPtr h, double lo, double hi, int hasLo, int hasHi);
    [DllImport(Lib)] internal static extern IntPtr mr_where(IntPtr c, IntPtr a, IntPtr b);

    [DllImport(Lib)] internal static extern int mr_copy_(IntPtr dst, IntPtr src);
    [DllImport(Lib)] internal static extern int mr_fill_(IntPtr dst, double v);
    [DllImport(Lib)] internal static extern int mr_add_(IntPtr dst, IntPtr src, double alpha);
    [DllImport(Lib)] internal static extern int mr_mul_scalar_(IntPtr dst, double s);

    [DllImport(Lib)] internal static extern IntPtr mr_reduce(IntPtr h, int op, long* d, int n, int keepdim);
    [DllImport(Lib)] internal static extern IntPtr mr_argmax(IntPtr h, long d, int keepdim);
    [DllImport(Lib)] internal static extern IntPtr mr_argmin(IntPtr h, long d, int keepdim);

    [DllImport(Lib)] internal static extern int mr_conv_stack_available();
    [DllImport(Lib)] internal static extern IntPtr mr_conv_stack(IntPtr x, IntPtr* parameters, int count, long stride, long pad, double eps);
    [DllImport(Lib)] internal static extern IntPtr mr_conv2d(IntPtr x, IntPtr w, IntPtr b, long sh, long sw, long ph, long pw, long dh, long dw, long groups);
    [DllImport(Lib)] internal static extern IntPtr mr_linear(IntPtr x, IntPtr w, IntPtr b);
    [DllImport(Lib)] internal static extern IntPtr mr_batch_norm(IntPtr x, IntPtr w, IntPtr b, IntPtr rm, IntPtr rv, int training, double momentum, double eps);
    [DllImport(Lib)] internal static extern IntPtr mr_max_pool2d(IntPtr x, long k, long s, long p);
    [DllImport(Lib)] internal static extern IntPtr mr_avg_pool2d(IntPtr x, long k, long s, long p);
    [DllImport(Lib)] internal static extern IntPtr mr_adaptive_avg_pool2d(IntPtr x, long oh, long ow);
    [DllImport(Lib)] internal static extern IntPtr mr_leaky_relu(IntPtr x, double slope);
    [DllImport(Lib)] internal static extern IntPtr mr_log_softmax(IntPtr x, long d);
    [DllImport(Lib)] internal static extern IntPtr mr_softmax(IntPtr x, long d);
    [DllImport(Lib)] internal static extern IntPtr mr_cross_entropy(IntPtr logits, IntPtr target, int reduction);
    [DllImport(Lib)] internal static extern IntPtr mr_mse_loss(IntPtr a, IntPtr b, int reduction);
    [DllImport(Lib)] internal static extern IntPtr mr_dropout(IntPtr x, double p, int training, IntPtr gen);
    [DllImport(Lib)] internal static extern IntPtr mr_interpolate(IntPtr x, long oh, long ow, int mode, int antialias);
    [DllImport(Lib)] internal static extern IntPtr mr_causal_conv1d(IntPtr x, IntPtr w, IntPtr b, long dilation);
    [DllImport(Lib)] internal static extern IntPtr mr_masked_softmax(IntPtr x, IntPtr mask, long d);
    [DllImport(Lib)] internal static extern IntPtr mr_kthvalue(IntPtr x, long k, long d, int keepdim);
    [DllImport(Lib)] internal static extern int mr_lstm_cell(IntPtr x, IntPtr h, IntPtr c, IntPtr wIh, IntPtr wHh, IntPtr bIh, IntPtr bHh, out IntPtr hOut, out IntPtr cOut);

    [DllImport(Lib)] internal static extern int mr_backward(IntPtr h, IntPtr grad, int retainGraph, int createGraph);
    [DllImport(Lib)] internal static extern int mr_autograd_grad(IntPtr* outs, int nOut, IntPtr* gradOuts, IntPtr* ins, int nIn, int retainGraph, int createGraph, int allowUnused, IntPtr* results);

    [DllImport(Lib)] internal static extern int mr_sgd_step(IntPtr p, IntPtr g, IntPtr buf, double lr, double momentum, double weightDecay, int nesterov, int first);
    [DllImport(Lib)] internal static extern int mr_adam_step(IntPtr p, IntPtr g, IntPtr m, IntPtr v, double lr, double beta1, double beta2, double eps, double weightDecay, long step);

    [DllImport(Lib)] internal static extern IntPtr mr_image_decode(byte* data, long size, int channels);
    [DllImport(Lib)] internal static extern long mr_image_encode(IntPtr img, int format, int quality, out IntPtr buffer);
    [DllImport(Lib)] internal static extern void mr_buffer_free(IntPtr buffer);
}
