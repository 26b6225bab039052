using LibTorch;

namespace MetaRun.Tests.LibTorch;

/// <summary>
/// The binding's own double backwards of batch norm (batch statistics) and convolution, which
/// MAML's second-order term runs through, against libtorch's: the same Hessian-vector products.
/// (`check ops` checks both against finite differences on small inputs.)
/// </summary>
public sealed class DoubleBackwardTests
{
    /// <summary>∇(Σ_i ⟨∇_i L, v_i⟩) over <paramref name="inputs"/>, L = f(inputs): a Hessian-vector product, as a flat array.</summary>
    private static double[] HessianVector(Func<Tensor[], Tensor> f, Tensor[] inputs, Generator g)
    {
        var grads = Torch.Grad([f(inputs)], inputs, createGraph: true);
        var dot = grads.Select(t => (t! * Torch.Randn(t!.Shape, t.DType, generator: g)).Sum()).Aggregate((a, b) => a + b);
        return [.. Torch.Grad([dot], inputs).SelectMany(t => t!.To(ScalarType.Float64).Flatten().ToArray<double>())];
    }

    private static void AssertClose(double[] expected, double[] actual, double relative)
    {
        var scale = expected.Max(Math.Abs);
        Assert.Equal(expected.Length, actual.Length);
        var worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(worst <= relative * scale, $"largest difference {worst:E3} against entries up to {scale:E3}");
    }

    [Theory]
    [InlineData(ScalarType.Float64, 1e-10)]
    [InlineData(ScalarType.Float32, 1e-4)]
    public void Batch_norm_with_batch_statistics_has_libtorchs_double_backward(ScalarType dtype, double tolerance)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(7);
        // Image-shaped (a meta-batch of 3 tasks × 4 channels side by side) and vector-shaped.
        foreach (long[] shape in new[] { new long[] { 5, 12, 7, 7 }, [6, 9] })
        {
            var c = shape[1];
            var x = Torch.Randn(shape, dtype, generator: g).RequiresGrad_();
            var gamma = (Torch.Rand([c], dtype, generator: g) + 0.5).RequiresGrad_();
            var beta = Torch.Randn([c], dtype, generator: g).RequiresGrad_();
            var weights = Torch.Randn(shape, dtype, generator: g);
            // Running statistics to update send the same normalization through libtorch's own op.
            Tensor Loss(Tensor y) => (y.Tanh() * weights).Sum().Square();
            Func<Tensor[], Tensor> ours = p => Loss(F.BatchNorm(p[0], null, null, p[1], p[2], training: true));
            Func<Tensor[], Tensor> libtorchs = p => Loss(F.BatchNorm(p[0], Torch.Zeros([c], dtype), Torch.Ones([c], dtype), p[1], p[2], training: true));
            using var g1 = new Generator(11);
            using var g2 = new Generator(11);
            AssertClose(HessianVector(libtorchs, [x, gamma, beta], g1), HessianVector(ours, [x, gamma, beta], g2), tolerance);
        }
    }

    // The forward and first backward are the binding's own kernels too (a channel's sums in 16 lanes):
    // maps shorter than a lane block, a block and a tail, several blocks.
    [Theory]
    [InlineData(ScalarType.Float64, 1e-12)]
    [InlineData(ScalarType.Float32, 2e-5)]
    public void Batch_norm_with_batch_statistics_has_libtorchs_output_and_gradients(ScalarType dtype, double tolerance)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(3);
        foreach (long[] shape in new[] { new long[] { 4, 3, 2, 2 }, [5, 12, 5, 5], [2, 5, 14, 14] })
        {
            var c = shape[1];
            var x = (Torch.Randn(shape, dtype, generator: g) * 3 + 2).RequiresGrad_();
            var gamma = (Torch.Rand([c], dtype, generator: g) + 0.5).RequiresGrad_();
            var beta = Torch.Randn([c], dtype, generator: g).RequiresGrad_();
            var weights = Torch.Randn(shape, dtype, generator: g);
            double[] Run(bool libtorchs)
            {
                var y = F.BatchNorm(x, libtorchs ? Torch.Zeros([c], dtype) : null, libtorchs ? Torch.Ones([c], dtype) : null, gamma, beta, training: true);
                var grads = Torch.Grad([(y.Tanh() * weights).Sum()], [x, gamma, beta]);
                return [.. new[] { y }.Concat(grads!).SelectMany(t => t!.To(ScalarType.Float64).Flatten().ToArray<double>())];
            }
            AssertClose(Run(libtorchs: true), Run(libtorchs: false), tolerance);
        }
    }

    // Groups of 2 input channels (oneDNN's gemm path) and of 16 (its direct kernels).
    [Theory]
    [InlineData(1, 1, 2)]
    [InlineData(2, 1, 2)]
    [InlineData(2, 0, 2)]
    [InlineData(2, 1, 16)]
    public void Grouped_convolution_has_the_double_backward_of_one_convolution_per_group(int stride, int padding, int inPer)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(5);
        const int groups = 3, outPer = 4;
        var x = Torch.Randn([4, groups * inPer, 6, 6], ScalarType.Float64, generator: g).RequiresGrad_();
        var w = Torch.Randn([groups * outPer, inPer, 3, 3], ScalarType.Float64, generator: g).RequiresGrad_();
        var b = Torch.Randn([groups * outPer], ScalarType.Float64, generator: g).RequiresGrad_();
        var side = (6 + 2 * padding - 3) / stride + 1;
        var weights = Torch.Randn([4, groups * outPer, side, side], ScalarType.Float64, generator: g);
        Tensor Loss(Tensor y) => (y.Tanh() * weights).Sum().Square();
        Func<Tensor[], Tensor> grouped = p => Loss(F.Conv2d(p[0], p[1], p[2], stride: stride, padding: padding, groups: groups));
        Func<Tensor[], Tensor> apart = p => Loss(Torch.Cat([.. Enumerable.Range(0, groups).Select(k =>
            F.Conv2d(p[0].Narrow(1, k * inPer, inPer), p[1].Narrow(0, k * outPer, outPer), p[2].Narrow(0, k * outPer, outPer), stride: stride, padding: padding))], 1));
        using var g1 = new Generator(13);
        using var g2 = new Generator(13);
        AssertClose(HessianVector(apart, [x, w, b], g1), HessianVector(grouped, [x, w, b], g2), 1e-10);
    }

    // One input channel per group (a batched network's first layer: each task's grey image against
    // its own kernels): output, first gradients and Hessian-vector products against one libtorch
    // convolution per group. Non-square images and kernels; the input as data (whose gradient the
    // second-order pass leaves out) and as a variable.
    [Theory]
    [InlineData(1, 1, true, ScalarType.Float64, 1e-10)]
    [InlineData(2, 1, true, ScalarType.Float64, 1e-10)]
    [InlineData(2, 0, false, ScalarType.Float64, 1e-10)]
    [InlineData(2, 1, true, ScalarType.Float32, 1e-4)]
    public void Grouped_convolution_with_one_input_channel_per_group_matches_one_convolution_per_group(int stride, int padding, bool data, ScalarType dtype, double tolerance)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(11);
        const int groups = 3, outPer = 5;
        var x = Torch.Randn([4, groups, 7, 9], dtype, generator: g);
        if (!data) x.RequiresGrad_();
        var w = Torch.Randn([groups * outPer, 1, 3, 2], dtype, generator: g).RequiresGrad_();
        var b = Torch.Randn([groups * outPer], dtype, generator: g).RequiresGrad_();
        Tensor[] inputs = data ? [w, b] : [x, w, b];
        Tensor Grouped(Tensor[] p) => F.Conv2d(x, p[^2], p[^1], stride: stride, padding: padding, groups: groups);
        Tensor Apart(Tensor[] p) => Torch.Cat([.. Enumerable.Range(0, groups).Select(k =>
            F.Conv2d(x.Narrow(1, k, 1), p[^2].Narrow(0, k * outPer, outPer), p[^1].Narrow(0, k * outPer, outPer), stride: stride, padding: padding))], 1);
        double[] Flat(Tensor t) => t.To(ScalarType.Float64).Flatten().ToArray<double>();
        AssertClose(Flat(Apart(inputs)), Flat(Grouped(inputs)), tolerance);

        var weights = Torch.Randn(Apart(inputs).Shape, dtype, generator: g);
        Func<Tensor[], Tensor> loss(Func<Tensor[], Tensor> conv) => p => (conv(p).Tanh() * weights).Sum().Square();
        double[] Gradients(Func<Tensor[], Tensor> f) => [.. Torch.Grad([f(inputs)], inputs).SelectMany(t => Flat(t!))];
        AssertClose(Gradients(loss(Apart)), Gradients(loss(Grouped)), tolerance);
        using var g1 = new Generator(13);
        using var g2 = new Generator(13);
        AssertClose(HessianVector(loss(Apart), inputs, g1), HessianVector(loss(Grouped), inputs, g2), tolerance);
    }
}
