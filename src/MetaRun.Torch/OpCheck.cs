using System.Runtime.InteropServices;
using System.Text;

namespace LibTorch;

/// <summary>One input of a checked op: its shape and starting values (converted to the checked precision).</summary>
public sealed record OpInput(long[] Shape, double[] Data)
{
    public override string ToString() => $"[{string.Join(", ", Shape)}]";
}

/// <summary>
/// Where and in which precision a case runs. A case makes its constants (indices, masks, running
/// statistics, creation ops) through it, so that they live beside its inputs on every device.
/// </summary>
public sealed class OpContext(Device device, ScalarType dtype)
{
    public Device Device { get; } = device;
    public ScalarType DType { get; } = dtype;

    /// <summary>A tensor of the checked precision on the checked device; an empty shape makes a scalar.</summary>
    public Tensor Float(double[] data, long[] shape) =>
        Torch.FromBytes(MemoryMarshal.AsBytes(data.AsSpan()), shape, ScalarType.Float64).To(Device, DType);

    public Tensor Float(params double[] data) => Float(data, [data.Length]);
    public Tensor Long(params long[] data) => Torch.From(data).To(Device);
    public Tensor Long(long[] data, params long[] shape) => Torch.From(data, shape).To(Device);
    public Tensor Bool(bool[] data, params long[] shape) => Torch.From(data, shape).To(Device);
    public Tensor Zeros(params long[] shape) => Torch.Zeros(shape, DType, Device);
    public Tensor Ones(params long[] shape) => Torch.Ones(shape, DType, Device);

    public override string ToString() => $"{Device} {DType.Name()}";
}

/// <summary>
/// One binding op (or a short composite) to check. A differentiable case is checked through the
/// scalar S(x) = Σ w ⊙ f(x) with fixed random weights w, so that every output element contributes
/// and none cancels (as Σ softmax would); a forward-only one by its values.
/// </summary>
public sealed record OpCase(string Name, Func<OpContext, Tensor[], Tensor> F, OpInput[] Inputs, bool Differentiable = true)
{
    public override string ToString() => Name;
}

/// <summary>The outcome of one case: null Failure when it passed; the largest errors seen, relative to the reference's scale.</summary>
public sealed record OpResult(string Name, string? Failure, double ForwardError, double GradientError)
{
    public bool Passed => Failure == null;
}

/// <summary>
/// Checks the binding's ops on a device against float64 on the CPU:
/// <list type="number">
/// <item>the float64 CPU reference's gradients against central finite differences, which checks the
/// binding's autograd wiring (a detached input, a wrong argument) independently of any device;</item>
/// <item>float32 on the device against the reference, forward values and gradients: on the CPU this
/// checks that each op honours the precision it is given, on CUDA the float32 kernels training uses;</item>
/// <item>on a GPU also float64 on the device against the reference, tightly: same precision, so only
/// summation order may differ, and any wrong CUDA kernel or device mix-up shows.</item>
/// </list>
/// Errors are max |a − r| / max(1, max |r|) over a tensor.
/// </summary>
public static class OpCheck
{
    public const double FdEps = 1e-6;
    public const double FdRelTol = 1e-5;
    public const double FdAbsTol = 1e-7;
    /// <summary>float32 against float64: float32 rounds at 6e-8, and these small ops accumulate a few dozen terms.</summary>
    public const double Float32Tol = 1e-4;
    /// <summary>CUDA's float32 convolutions use TF32 (a 10-bit mantissa) by default, as PyTorch does; the float64 check is the tight one there.</summary>
    public const double CudaFloat32Tol = 1e-2;
    public const double Float64Tol = 1e-9;

    public static IReadOnlyList<OpResult> Run(Device device, IEnumerable<OpCase>? cases = null) =>
        (cases ?? OpCatalog.All).Select((c, i) => Check(c, device, 1000 + i)).ToList();

    public static OpResult Check(OpCase c, Device device, int seed)
    {
        try
        {
            var reference = new OpContext(Device.Cpu, ScalarType.Float64);
            var rng = new Random(seed);
            double[]? weights = null;
            double[] WeightsFor(long n) => weights ??= Enumerable.Range(0, (int)n).Select(_ => (rng.NextDouble() + 0.5) * (rng.Next(2) * 2 - 1)).ToArray();

            var data = c.Inputs.Select(i => i.Data).ToArray();
            var r = Evaluate(c, reference, data, WeightsFor);
            if (c.Differentiable)
            {
                var fd = FiniteDifferences(c, reference, r, weights!);
                if (fd != null) return new OpResult(c.Name, fd, 0, 0);
            }

            var candidates = new List<(OpContext Context, double Tol)>
            {
                (new OpContext(device, ScalarType.Float32), device.Type == DeviceType.Cuda ? CudaFloat32Tol : Float32Tol),
            };
            if (device.Type != DeviceType.Cpu) candidates.Add((new OpContext(device, ScalarType.Float64), Float64Tol));

            double forwardError = 0, gradientError = 0;
            foreach (var (context, tol) in candidates)
            {
                var e = Evaluate(c, context, data, WeightsFor);
                if (!e.Shape.SequenceEqual(r.Shape))
                    return new OpResult(c.Name, $"{context}: output shape [{string.Join(", ", e.Shape)}], reference [{string.Join(", ", r.Shape)}]", 0, 0);
                var f = Error(e.Y, r.Y);
                forwardError = Math.Max(forwardError, f);
                if (!(f <= tol)) return new OpResult(c.Name, $"{context}: forward values differ from float64 on the CPU by {f:G3} (tolerance {tol:G3})", f, 0);
                for (var k = 0; k < r.Grads.Length; k++)
                {
                    var g = Error(e.Grads[k], r.Grads[k]);
                    gradientError = Math.Max(gradientError, g);
                    if (!(g <= tol))
                        return new OpResult(c.Name, $"{context}: gradient of input {k} {c.Inputs[k]} differs from float64 on the CPU by {g:G3} (tolerance {tol:G3})", f, g);
                }
            }
            return new OpResult(c.Name, null, forwardError, gradientError);
        }
        catch (TorchException e)
        {
            return new OpResult(c.Name, $"libtorch error: {e.Message}", 0, 0);
        }
    }

    private sealed record Evaluation(long[] Shape, double[] Y, double[][] Grads);

    private static Evaluation Evaluate(OpCase c, OpContext context, double[][] data, Func<long, double[]> weightsFor)
    {
        using var scope = Torch.NewScope();
        var leaves = c.Inputs.Select((i, k) => context.Float(data[k], i.Shape).RequiresGrad_(c.Differentiable)).ToArray();
        var y = c.F(context, leaves);
        if (y.Device != context.Device) throw new TorchException($"the output is on {y.Device}, not on {context.Device}");
        var values = y.Detach().To(Device.Cpu, ScalarType.Float64).Contiguous().ToArray<double>();
        if (!c.Differentiable) return new Evaluation(y.Shape, values, []);
        if (y.DType != context.DType) throw new TorchException($"the output is {y.DType.Name()}, not {context.DType.Name()}");
        var s = (y * context.Float(weightsFor(y.NumElements), y.Shape)).Sum();
        var grads = Torch.Grad([s], leaves, allowUnused: true);
        var g = new double[grads.Length][];
        for (var k = 0; k < grads.Length; k++)
            g[k] = grads[k]?.To(Device.Cpu, ScalarType.Float64).Contiguous().ToArray<double>()
                   ?? throw new TorchException($"no gradient reaches input {k} {c.Inputs[k]}");
        return new Evaluation(y.Shape, values, g);
    }

    private static string? FiniteDifferences(OpCase c, OpContext reference, Evaluation analytic, double[] weights)
    {
        var x = c.Inputs.Select(i => (double[])i.Data.Clone()).ToArray();
        double S()
        {
            using var scope = Torch.NewScope();
            // Leaves require grad even here: a case may itself differentiate (second order).
            var leaves = c.Inputs.Select((i, k) => reference.Float(x[k], i.Shape).RequiresGrad_()).ToArray();
            var y = c.F(reference, leaves);
            return (y * reference.Float(weights, y.Shape)).Sum().Item();
        }

        var failures = new StringBuilder();
        int bad = 0, total = 0;
        for (var k = 0; k < x.Length; k++)
        {
            for (var j = 0; j < x[k].Length; j++)
            {
                var saved = x[k][j];
                x[k][j] = saved + FdEps;
                var plus = S();
                x[k][j] = saved - FdEps;
                var minus = S();
                x[k][j] = saved;
                var numeric = (plus - minus) / (2 * FdEps);
                var a = analytic.Grads[k][j];
                total++;
                if (!(Math.Abs(a - numeric) <= FdAbsTol + FdRelTol * Math.Max(Math.Abs(a), Math.Abs(numeric))) && bad++ < 4)
                    failures.Append($"; input {k} {c.Inputs[k]} element {j}: autograd {a:R}, finite difference {numeric:R}");
            }
        }
        return bad == 0 ? null : $"float64 gradients disagree with finite differences in {bad} of {total} entries{failures}";
    }

    private static double Error(double[] actual, double[] expected)
    {
        if (actual.Length != expected.Length) return double.PositiveInfinity;
        double scale = 1, worst = 0;
        foreach (var v in expected) scale = Math.Max(scale, Math.Abs(v));
        for (var i = 0; i < actual.Length; i++)
        {
            var d = Math.Abs(actual[i] - expected[i]);
            if (double.IsNaN(d)) return double.NaN;
            worst = Math.Max(worst, d);
        }
        return worst / scale;
    }
}
