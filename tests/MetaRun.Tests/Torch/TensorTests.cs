using LibTorch;
using static MetaRun.Tests.LibTorch.TestSupport;

namespace MetaRun.Tests.LibTorch;

/// <summary>Creation, conversion, operators and autograd plumbing.</summary>
[Collection(TorchSerialCollection.Name)]
public sealed class TensorTests
{
    [Fact]
    public void CreationFunctionsGiveTheRequestedShapeDtypeAndValues()
    {
        using var scope = Torch.NewScope();
        var z = Torch.Zeros([2, 3]);
        Assert.Equal([2L, 3L], z.Shape);
        Assert.Equal(ScalarType.Float32, z.DType);
        Assert.Equal(Device.Cpu, z.Device);
        Assert.Equal(2, z.Dim);
        Assert.Equal(6, z.NumElements);
        Assert.Equal(3, z.Size(-1));
        Assert.All(z.ToArray<float>(), v => Assert.Equal(0f, v));
        Assert.All(Torch.Ones([4], ScalarType.Float64).D(), v => Assert.Equal(1.0, v));
        Assert.Equal([7L, 7L, 7L], Torch.Full([3], 7, ScalarType.Int64).ToArray<long>());
        var s = Torch.Scalar(2.5, ScalarType.Float64);
        Assert.Empty(s.Shape);
        Assert.Equal(1, s.NumElements);
        Assert.Equal(2.5, s.Item());
        Assert.Equal([0L, 5L], Torch.Empty([0, 5]).Shape);
        Assert.Equal(ScalarType.UInt8, Torch.Empty([2], ScalarType.UInt8).DType);
        Assert.Equal([0L, 1L, 2L, 3L], Torch.Arange(4).ToArray<long>());
        Assert.Equal([1.0, 1.5, 2.0, 2.5], Torch.Arange(1, 3, 0.5, ScalarType.Float64).D());

        using var gen = new Generator(11);
        var u = Torch.Rand([10_000], ScalarType.Float64, generator: gen).D();
        Assert.All(u, v => Assert.InRange(v, 0.0, 0.99999999999));
        Assert.InRange(u.Average(), 0.48, 0.52);
        var n = Torch.Randn([10_000], ScalarType.Float64, generator: gen);
        Assert.InRange(n.Mean().Item(), -0.05, 0.05);
        Assert.InRange(n.Std().Item(), 0.95, 1.05);
        var k = Torch.RandInt(-2, 3, [1000], generator: gen).ToArray<long>();
        Assert.All(k, v => Assert.InRange(v, -2L, 2L));
        Assert.Equal(5, k.Distinct().Count());
    }

    [Fact]
    public void FromAndToArrayRoundTripEveryElementType()
    {
        using var scope = Torch.NewScope();
        float[] f = [1.5f, -2f, float.MaxValue, float.Epsilon, 0f, -0f];
        var tf = Torch.From(f, 2, 3);
        Assert.Equal(ScalarType.Float32, tf.DType);
        Assert.Equal([2L, 3L], tf.Shape);
        Assert.Equal(f, tf.ToArray<float>());
        double[] d = [Math.PI, -1e-300, double.MaxValue, double.NegativeInfinity];
        Assert.Equal(d, Torch.From(d).ToArray<double>());
        Assert.True(double.IsNaN(Torch.From([double.NaN]).D()[0]));
        long[] l = [long.MinValue, -1, 0, long.MaxValue];
        Assert.Equal(l, Torch.From(l, 2, 2).ToArray<long>());
        int[] i = [int.MinValue, 7, int.MaxValue];
        Assert.Equal(ScalarType.Int32, Torch.From(i).DType);
        Assert.Equal(i, Torch.From(i).ToArray<int>());
        byte[] b = [0, 128, 255];
        Assert.Equal(ScalarType.UInt8, Torch.From(b).DType);
        Assert.Equal(b, Torch.From(b).ToArray<byte>());
        bool[] m = [true, false, true];
        Assert.Equal(ScalarType.Bool, Torch.From(m).DType);
        Assert.Equal(m, Torch.From(m).ToArray<bool>());
        Assert.Equal(new byte[] { 1, 0, 1 }, Torch.From(m).ToBytes());

        // Non-contiguous tensors read back in logical (row-major) order.
        Assert.Equal([1.5f, float.Epsilon, -2f, 0f, float.MaxValue, -0f], tf.Transpose(0, 1).ToArray<float>());
        // Reading with the wrong element size is refused, not misread.
        Assert.Throws<InvalidOperationException>(() => tf.ToArray<double>());
        // Conversions.
        Assert.Equal([1L, -2L, 0L], Torch.From([1.7, -2.2, 0.4]).To(ScalarType.Int64).ToArray<long>());
        Assert.Equal(ScalarType.Float64, tf.To(Device.Cpu, ScalarType.Float64).DType);
        Assert.Equal(f, tf.To(Device.Cpu).ToArray<float>());
        // An empty tensor.
        Assert.Empty(Torch.From(Array.Empty<float>()).ToArray<float>());
    }

    [Fact]
    public void ToStringShowsShapeDtypeAndDevice()
    {
        using var scope = Torch.NewScope();
        Assert.Equal("Tensor[2, 3] float32 cpu", Torch.Zeros([2, 3]).ToString());
        Assert.Equal("Tensor[] float64 cpu", Torch.Scalar(1, ScalarType.Float64).ToString());
        Assert.Equal("Tensor[4] int64 cpu", I64(1, 2, 3, 4).ToString());
        Assert.Equal("Tensor[0] bool cpu", Torch.Empty([0], ScalarType.Bool).ToString());
    }

    [Fact]
    public void OperatorsComputeTheExpectedValues()
    {
        using var scope = Torch.NewScope();
        var a = F64(1, 2, 3);
        var b = F64(4, 5, 6);
        Assert.Equal([5.0, 7, 9], (a + b).D());
        Assert.Equal([-3.0, -3, -3], (a - b).D());
        Assert.Equal([4.0, 10, 18], (a * b).D());
        Assert.Equal([0.25, 0.4, 0.5], (a / b).D());
        Assert.Equal([3.0, 4, 5], (a + 2).D());
        Assert.Equal([3.0, 4, 5], (2 + a).D());
        Assert.Equal([-1.0, 0, 1], (a - 2).D());
        Assert.Equal([1.0, 0, -1], (2 - a).D());
        Assert.Equal([2.0, 4, 6], (a * 2).D());
        Assert.Equal([2.0, 4, 6], (2 * a).D());
        Assert.Equal([0.5, 1, 1.5], (a / 2).D());
        Assert.Equal([6.0, 3, 2], (6 / a).D());
        Assert.Equal([-1.0, -2, -3], (-a).D());
        Assert.Equal([9.0, 12, 15], a.Add(b, 2).D());
        Assert.Equal([1.0, 8, 27], a.Pow(3).D());
        Assert.Equal([1.0, 32, 729], a.Pow(b).D());
        Assert.Equal([false, true, true], (a > 1.5).ToArray<bool>());
        Assert.Equal([true, true, false], (a <= 2).ToArray<bool>());
        Assert.Equal([true, true, true], (a < b).ToArray<bool>());
        Assert.Equal([false, false, false], (a >= b).ToArray<bool>());
        Assert.Equal([false, true, false], a.Eq(2).ToArray<bool>());
        Assert.Equal([true, false, true], a.Ne(2).ToArray<bool>());
        Assert.Equal([false, true, true], (a > 1.5).LogicalAnd(a < 5).ToArray<bool>());
        Assert.Equal([true, false, true], (a < 1.5).LogicalOr(a > 2.5).ToArray<bool>());
        Assert.Equal([false, true, false], (a.Ne(2)).LogicalNot().ToArray<bool>());
        Assert.Equal([2.0, 2, 3], a.Clamp(2, 5).D());
        Assert.Equal([-1.0, 0, 1], F64(-2.5, 0, 0.1).Sign().D());
        Assert.Equal([-3.0, 0, 0], F64(-2.5, 0, 0.9).Floor().D());

        // Scalars promote like PyTorch's Python numbers: by category only, never widening a tensor.
        var i = I64(1, 2, 3);
        Assert.Equal(ScalarType.Int64, (i * 2).DType);
        Assert.Equal([2L, 4L, 6L], (i * 2).ToArray<long>());
        Assert.Equal([9L, 8L, 7L], (10 - i).ToArray<long>());
        Assert.Equal(ScalarType.Float32, (i + 0.5).DType);        // int64 + 0.5 is float32, not float64
        Assert.Equal([1.5f, 2.5f, 3.5f], (i + 0.5).ToArray<float>());
        Assert.Equal(ScalarType.Float32, (i / 2).DType);          // true division
        Assert.Equal([0.5f, 1f, 1.5f], (i / 2).ToArray<float>());
        var pixels = Torch.From(new byte[] { 0, 51, 255 });
        Assert.Equal(ScalarType.Float32, (pixels * (1 / 255.0)).DType);
        Assert.Equal(ScalarType.Float32, (pixels - 127.5).DType);
        Assert.Equal(ScalarType.UInt8, (pixels + 1).DType);
        var mask = Torch.From([true, false, true]);
        Assert.Equal([2L, 0L, 2L], (mask * 2).ToArray<long>()); // not a bool "true"
        Assert.Equal(ScalarType.Float32, (mask * 0.5).DType);
        Assert.Equal(ScalarType.Float32, (Torch.Ones([2]) * 1e300).DType);
        Assert.Equal(ScalarType.Float64, (a * 2).DType);

        // Matrix product, reductions and arg-reductions.
        var m = F64([1, 2, 3, 4, 5, 6], 2, 3);
        Assert.Equal([14.0, 32], m.MatMul(a).D());
        Assert.Equal(21.0, m.Sum().Item());
        Assert.Equal([5.0, 7, 9], m.Sum(0).D());
        Assert.Equal([2.0, 5], m.Mean(1).D());
        Assert.Equal([2L, 1L], m.Mean(1, keepDim: true).Shape);
        Assert.Equal(35.0 / 12, m.Var(unbiased: false).Item(), 12);
        Assert.Equal(3.5, m.Var().Item(), 12);
        Assert.Equal(Math.Sqrt(3.5), m.Std().Item(), 12);
        Assert.Equal(6.0, m.Max().Item());
        Assert.Equal([3.0, 6], m.Max(1).D());
        Assert.Equal([1.0, 2, 3], m.Min(0).D());
        Assert.Equal([2L, 2L], m.ArgMax(1).ToArray<long>());
        Assert.Equal([0L, 0L, 0L], m.ArgMin(0).ToArray<long>());

        // Indexing.
        Assert.Equal([4.0, 5, 6], m[1].D());
        Assert.Equal([4.0, 5, 6], m[-1].D());
        Assert.Equal([4.0, 5, 6, 1, 2, 3], m[I64(1, 0)].D());
        Assert.Equal([1.0, 3], a[Torch.From([true, false, true])].D());
    }

    [Fact]
    public void InPlaceOperationsCloneAndDetach()
    {
        using var scope = Torch.NewScope();
        var a = F64(1, 2, 3);
        var c = a.Clone();
        c.Fill_(9);
        Assert.Equal([1.0, 2, 3], a.D());
        Assert.Equal([9.0, 9, 9], c.D());
        c.CopyFrom(a).Mul_(2).Add_(a, 0.5);
        Assert.Equal([2.5, 5, 7.5], c.D());
        var alias = a.Alias();
        alias.Fill_(4);
        Assert.Equal([4.0, 4, 4], a.D());
        var v = a.View(3, 1);
        v.Fill_(1);
        Assert.Equal([1.0, 1, 1], a.D());
        var w = a.Clone().RequiresGrad_();
        Assert.True(w.RequiresGrad);
        Assert.True((w * 2).RequiresGrad);
        Assert.False((w * 2).Detach().RequiresGrad);
        Assert.Equal([3L, 1L], a.Unsqueeze(1).Contiguous().Shape);
    }

    [Fact]
    public void BackwardAccumulatesIntoGradAndNoGradStopsRecording()
    {
        using var scope = Torch.NewScope();
        var w = F64(1, 2, 3).RequiresGrad_();
        Assert.Null(w.Grad);
        (w * w).Sum().Backward();
        Assert.Equal([2.0, 4, 6], w.Grad!.D());
        (w * 3).Sum().Backward();
        Assert.Equal([5.0, 7, 9], w.Grad!.D());
        w.ZeroGrad();
        Assert.Null(w.Grad);
        (w.Pow(2) * F64(1, 0, 1)).Backward(F64(1, 1, 1));
        Assert.Equal([2.0, 0, 6], w.Grad!.D());

        using (Torch.NoGrad())
        {
            Assert.False((w * 2).RequiresGrad);
            using (Torch.EnableGrad()) Assert.True((w * 2).RequiresGrad);
            Assert.False((w * 2).RequiresGrad);
        }
        Assert.True((w * 2).RequiresGrad);

        var unused = F64(1).RequiresGrad_();
        var grads = Torch.Grad([(w * 2).Sum()], [w, unused], allowUnused: true);
        Assert.Equal([2.0, 2, 2], grads[0]!.D());
        Assert.Null(grads[1]);
        Assert.Throws<TorchException>(() => Torch.Grad((w * 2).Sum(), unused));

        // Gradients with respect to several outputs and explicit output gradients.
        var y1 = w * 2;
        var y2 = w.Sum();
        var g = Torch.Grad([y1, y2], [w], [F64(1, 0, 0), Torch.Scalar(10, ScalarType.Float64)]);
        Assert.Equal([12.0, 10, 10], g[0]!.D());
    }

    [Fact]
    public void DropoutZeroesAndRescalesWithAReproducibleMask()
    {
        using var scope = Torch.NewScope();
        var x = Torch.Ones([2000], ScalarType.Float64);
        using var gen = new Generator(4);
        var state = gen.GetState();
        var y = F.Dropout(x, 0.25, training: true, gen).D();
        Assert.All(y, v => Assert.True(v == 0 || Math.Abs(v - 1 / 0.75) < 1e-12, $"unexpected value {v}"));
        Assert.InRange(y.Count(v => v == 0) / 2000.0, 0.2, 0.3);
        gen.SetState(state);
        Assert.Equal(y, F.Dropout(x, 0.25, training: true, gen).D());
        Assert.NotEqual(y, F.Dropout(x, 0.25, training: true, gen).D());
        Assert.Equal(x.D(), F.Dropout(x, 0.25, training: false, gen).D());
        Assert.All(F.Dropout(x, 1, training: true, gen).D(), v => Assert.Equal(0.0, v));
    }

}
