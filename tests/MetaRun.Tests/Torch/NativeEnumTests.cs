using LibTorch;
using static MetaRun.Tests.LibTorch.TestSupport;

namespace MetaRun.Tests.LibTorch;

/// <summary>
/// The op codes the binding passes to native/ (NativeEnums.cs against native/src/codes.h): equal
/// counts on both sides, every managed value running the op its name says, and an unknown code
/// refused rather than running something else.
/// </summary>
public sealed class NativeEnumTests
{
    [Fact]
    public void EveryEnumHasAsManyMembersAsItsNativeCounterpart()
    {
        foreach (var (managed, native) in NativeEnums.All)
            Assert.True(Enum.GetValues(managed).Length == NativeEnums.NativeCount(native), $"{managed.Name} against native '{native}'");
        NativeEnums.EnsureVerified();
        var e = Assert.Throws<TorchException>(() => NativeEnums.NativeCount("no such enum"));
        Assert.Contains("unknown enum 'no such enum'", e.Message);
    }

    [Fact]
    public void EveryUnaryCodeRunsItsOp()
    {
        // One input and result per op, chosen so that no other op gives the same result.
        var cases = new Dictionary<UnaryOp, (double X, double Y)>
        {
            [UnaryOp.Neg] = (2, -2),
            [UnaryOp.Sqrt] = (4, 2),
            [UnaryOp.Exp] = (1, Math.E),
            [UnaryOp.Log] = (Math.E, 1),
            [UnaryOp.Abs] = (-3, 3),
            [UnaryOp.Relu] = (-3, 0),
            [UnaryOp.Sigmoid] = (0, 0.5),
            [UnaryOp.Tanh] = (1, Math.Tanh(1)),
            [UnaryOp.Sign] = (-3, -1),
            [UnaryOp.Reciprocal] = (4, 0.25),
            [UnaryOp.Square] = (3, 9),
            [UnaryOp.Floor] = (2.5, 2),
            [UnaryOp.LogicalNot] = (0, 1),
        };
        Assert.Equal(Enum.GetValues<UnaryOp>().Order(), cases.Keys.Order());
        using var scope = Torch.NewScope();
        foreach (var (op, (x, y)) in cases)
        {
            var r = new Tensor(Native.mr_unary(F64(x).Handle, (int)op)).To(ScalarType.Float64).D();
            Assert.True(Math.Abs(y - r[0]) < 1e-12, $"{op}({x}) = {r[0]}, expected {y}");
        }
    }

    [Fact]
    public void EveryBinaryCodeRunsItsOp()
    {
        double[] a = [6, 0, 3], b = [3, 4, 3];
        var cases = new Dictionary<BinaryOp, double[]>
        {
            [BinaryOp.Add] = [9, 4, 6],
            [BinaryOp.Sub] = [3, -4, 0],
            [BinaryOp.Mul] = [18, 0, 9],
            [BinaryOp.Div] = [2, 0, 1],
            [BinaryOp.Pow] = [216, 0, 27],
            [BinaryOp.MatMul] = [27],
            [BinaryOp.Maximum] = [6, 4, 3],
            [BinaryOp.Minimum] = [3, 0, 3],
            [BinaryOp.Eq] = [0, 0, 1],
            [BinaryOp.Ne] = [1, 1, 0],
            [BinaryOp.Lt] = [0, 1, 0],
            [BinaryOp.Le] = [0, 1, 1],
            [BinaryOp.Gt] = [1, 0, 0],
            [BinaryOp.Ge] = [1, 0, 1],
            [BinaryOp.And] = [1, 0, 1],
            [BinaryOp.Or] = [1, 1, 1],
        };
        Assert.Equal(Enum.GetValues<BinaryOp>().Order(), cases.Keys.Order());
        using var scope = Torch.NewScope();
        foreach (var (op, expected) in cases)
            AllClose(expected, new Tensor(Native.mr_binary(F64(a).Handle, F64(b).Handle, (int)op)).To(ScalarType.Float64).D(), what: op.ToString());
    }

    [Fact]
    public unsafe void EveryReduceCodeRunsItsOpOverAllAndOverOneDimension()
    {
        // [1, 2, 6]: sum 9, mean 3, squared deviations 14, so variance 7 (unbiased) or 14/3.
        var cases = new Dictionary<ReduceOp, double>
        {
            [ReduceOp.Sum] = 9,
            [ReduceOp.Mean] = 3,
            [ReduceOp.Var] = 7,
            [ReduceOp.VarBiased] = 14.0 / 3,
            [ReduceOp.Amax] = 6,
            [ReduceOp.Amin] = 1,
            [ReduceOp.Std] = Math.Sqrt(7),
        };
        Assert.Equal(Enum.GetValues<ReduceOp>().Order(), cases.Keys.Order());
        using var scope = Torch.NewScope();
        var x = F64(1, 2, 6);
        long dim = 0;
        foreach (var (op, y) in cases)
        {
            var all = new Tensor(Native.mr_reduce(x.Handle, (int)op, null, 0, 0)).Item();
            var one = new Tensor(Native.mr_reduce(x.Handle, (int)op, &dim, 1, 0)).Item();
            Assert.True(Math.Abs(y - all) < 1e-12 && Math.Abs(y - one) < 1e-12, $"{op}: {all} over all, {one} over dim 0, expected {y}");
        }
    }

    [Fact]
    public unsafe void AnUnknownCodeIsATorchExceptionNotAnotherOp()
    {
        using var scope = Torch.NewScope();
        var x = F64(1, 2, 6);
        var images = Torch.Zeros([1, 1, 2, 2], ScalarType.Float64);
        void Refused(string what, Func<IntPtr> call)
        {
            var e = Assert.Throws<TorchException>(() => new Tensor(call()));
            Assert.Contains(what, e.Message);
        }
        Refused("unknown unary op 13", () => Native.mr_unary(x.Handle, Enum.GetValues<UnaryOp>().Length));
        Refused("unknown binary op -1", () => Native.mr_binary(x.Handle, x.Handle, -1));
        Refused("unknown binary op 16", () => Native.mr_binary_scalar(x.Handle, 2, Enum.GetValues<BinaryOp>().Length, 0));
        Refused("unknown reduction 7", () => Native.mr_reduce(x.Handle, Enum.GetValues<ReduceOp>().Length, null, 0, 0));
        Refused("unknown loss reduction 3", () => Native.mr_mse_loss(x.Handle, x.Handle, Enum.GetValues<Reduction>().Length));
        Refused("unknown loss reduction 3", () => Native.mr_cross_entropy(Torch.Zeros([2, 3]).Handle, I64(0, 1).Handle, 3));
        Refused("unknown interpolation mode 3", () => Native.mr_interpolate(images.Handle, 1, 1, Enum.GetValues<InterpolationMode>().Length, 0));
        var image = Torch.Zeros([1, 2, 2], ScalarType.UInt8);
        Assert.Equal(-1, Native.mr_image_encode(image.Handle, Enum.GetValues<ImageEncoding>().Length, 90, out _));
        var e = Assert.Throws<TorchException>(Native.ThrowLastError);
        Assert.Contains($"unknown image format {Enum.GetValues<ImageEncoding>().Length}", e.Message);
    }
}
