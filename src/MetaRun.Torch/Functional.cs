using static LibTorch.Native;

namespace LibTorch;

/// <summary>How a loss reduces over its elements; the values are libtorch's at::Reduction codes (native LossReduction).</summary>
public enum Reduction
{
    None = 0,
    Mean = 1,
    Sum = 2,
}

/// <summary>How <see cref="F.Interpolate"/> resamples (native Interpolation).</summary>
public enum InterpolationMode
{
    Bilinear = 0,
    Bicubic = 1,
    Area = 2,
}

/// <summary>
/// Stateless neural-network functions. Parameters are arguments, never hidden state, so that a
/// model can be run with adapted parameters (MAML's fast weights) as easily as with its own.
/// </summary>
public static class F
{
    private static IntPtr H(Tensor? t) => t?.Handle ?? IntPtr.Zero;

    /// <summary>
    /// 2-D convolution. <paramref name="weight"/> [T, O, C/g, KH, KW] (bias [T, O]) holds per-task
    /// kernels for a meta-batch's images [N, T·C, H, W] side by side, with groups = T·g: each task's
    /// channels convolved with its own kernels; where every task's kernels are one tensor expanded
    /// (the first inner step), on the CPU that is one ordinary convolution over the tasks' images.
    /// </summary>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias = null, int stride = 1, int padding = 0, int dilation = 1, int groups = 1) =>
        new(mr_conv2d(input.Handle, weight.Handle, H(bias), stride, stride, padding, padding, dilation, dilation, groups));

    /// <summary>Whether <see cref="ConvStack"/> runs here: oneDNN's headers at build time, a libtorch that links the shared oneDNN, a processor with AVX-512.</summary>
    public static bool ConvStackAvailable { get; } = mr_conv_stack_available() == 1;

    /// <summary>
    /// A meta-batch's blocks of convolution → batch norm (the batch's statistics) → ReLU, then the
    /// mean over space: images [N, T·C, H, W] → features [N, T·O]. <paramref name="parameters"/> holds
    /// four tensors per block: kernels [T, O, C, K, K], bias, γ and β [T, O] (each may be one
    /// tensor expanded over T). On the CPU in oneDNN's blocked layout throughout, with a backward
    /// that cannot be differentiated again: for passes whose gradient is taken once.
    /// </summary>
    public static Tensor ConvStack(Tensor input, IReadOnlyList<Tensor> parameters, int stride, int padding, double eps = 1e-5)
    {
        var handles = parameters.Select(t => t.Handle).ToArray();
        unsafe
        {
            fixed (IntPtr* p = handles) return new(mr_conv_stack(input.Handle, p, handles.Length, stride, padding, eps));
        }
    }

    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null) => new(mr_linear(input.Handle, weight.Handle, H(bias)));

    /// <summary>
    /// Batch normalization. In training mode it normalizes with the batch's own statistics (and
    /// updates running statistics when given); otherwise with the running statistics.
    /// </summary>
    public static Tensor BatchNorm(Tensor input, Tensor? runningMean, Tensor? runningVar, Tensor? weight, Tensor? bias,
        bool training, double momentum = 0.1, double eps = 1e-5) =>
        new(mr_batch_norm(input.Handle, H(weight), H(bias), H(runningMean), H(runningVar), training ? 1 : 0, momentum, eps));

    public static Tensor MaxPool2d(Tensor input, int kernel, int? stride = null, int padding = 0) =>
        new(mr_max_pool2d(input.Handle, kernel, stride ?? kernel, padding));

    public static Tensor AvgPool2d(Tensor input, int kernel, int? stride = null, int padding = 0) =>
        new(mr_avg_pool2d(input.Handle, kernel, stride ?? kernel, padding));

    public static Tensor AdaptiveAvgPool2d(Tensor input, int height, int width) => new(mr_adaptive_avg_pool2d(input.Handle, height, width));

    public static Tensor Relu(Tensor input) => input.Relu();
    public static Tensor LeakyRelu(Tensor input, double slope = 0.01) => new(mr_leaky_relu(input.Handle, slope));
    public static Tensor LogSoftmax(Tensor input, long dim) => new(mr_log_softmax(input.Handle, dim));
    public static Tensor Softmax(Tensor input, long dim) => new(mr_softmax(input.Handle, dim));

    /// <summary>Inverted dropout; the mask comes from <paramref name="generator"/> (or the default one).</summary>
    public static Tensor Dropout(Tensor input, double p, bool training, Generator? generator = null) =>
        new(mr_dropout(input.Handle, p, training ? 1 : 0, generator?.Handle ?? IntPtr.Zero));

    /// <summary>Cross-entropy of logits [N, C] against int64 class indices [N].</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, Reduction reduction = Reduction.Mean)
    {
        NativeEnums.EnsureVerified();
        return new Tensor(mr_cross_entropy(logits.Handle, target.Handle, (int)reduction));
    }

    public static Tensor MseLoss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
    {
        NativeEnums.EnsureVerified();
        return new Tensor(mr_mse_loss(input.Handle, target.Handle, (int)reduction));
    }

    /// <summary>
    /// One LSTM step (PyTorch's LSTMCell): x [N, I], h and c [N, H], wIh [4H, I], wHh [4H, H],
    /// biases [4H] or null, gates in (input, forget, cell, output) order. Returns the next (h, c).
    /// </summary>
    public static (Tensor H, Tensor C) LstmCell(Tensor input, Tensor h, Tensor c, Tensor wIh, Tensor wHh, Tensor? bIh = null, Tensor? bHh = null)
    {
        Check(mr_lstm_cell(input.Handle, h.Handle, c.Handle, wIh.Handle, wHh.Handle, H(bIh), H(bHh), out var hOut, out var cOut));
        return (new Tensor(hOut), new Tensor(cOut));
    }

    /// <summary>
    /// Causal 1-D convolution: x [N, C, L], weight [O, C, K], bias [O] or null. The input is padded on
    /// the left only ((K − 1)·dilation zeros), so output position t reads inputs t, t − dilation, …
    /// and never a later one; the output is [N, O, L].
    /// </summary>
    public static Tensor CausalConv1d(Tensor input, Tensor weight, Tensor? bias = null, int dilation = 1) =>
        new(mr_causal_conv1d(input.Handle, weight.Handle, H(bias), dilation));

    /// <summary>
    /// Softmax along <paramref name="dim"/> over the entries where <paramref name="mask"/> (bool,
    /// broadcastable to the input) is true; the others get probability 0 and no gradient. A row with
    /// nothing left is all zeros. Causal attention: mask[i, j] = j ≤ i.
    /// </summary>
    public static Tensor MaskedSoftmax(Tensor input, Tensor mask, long dim) => new(mr_masked_softmax(input.Handle, mask.Handle, dim));

    /// <summary>Resizes [N, C, H, W] images. Antialiasing (bilinear/bicubic) low-pass filters when shrinking.</summary>
    public static Tensor Interpolate(Tensor input, int height, int width, InterpolationMode mode = InterpolationMode.Bilinear, bool antialias = false)
    {
        NativeEnums.EnsureVerified();
        return new Tensor(mr_interpolate(input.Handle, height, width, (int)mode, antialias ? 1 : 0));
    }
}
