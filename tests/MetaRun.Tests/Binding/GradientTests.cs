namespace MetaRun.Tests.Binding;

using LibTorch;
using static MetaRun.Tests.Binding.TestSupport;

/// <summary>Every differentiable op's gradient against central finite differences (float64).</summary>
public sealed class GradientTests
{
    private sealed record Case(Func<Tensor[], Tensor> F, GradInput[] Inputs);

    private static readonly Dictionary<string, Case> Cases = Build();

    public static TheoryData<string> Names
    {
        get
        {
            var d = new TheoryData<string>();
            foreach (var k in Cases.Keys) d.Add(k);
            return d;
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void GradientMatchesFiniteDifferences(string op)
    {
        var c = Cases[op];
        GradCheck.Check(op, c.F, c.Inputs);
    }

    [Fact]
    public void GradCheckDetectsAWrongGradient()
    {
        // The helper must be able to fail: x.Detach() * x has gradient x, not the true 2x.
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() =>
            GradCheck.Check("wrong", x => x[0].Detach() * x[0], new GradInput([3], [0.5, -1.0, 2.0])));
    }

    private static Dictionary<string, Case> Build()
    {
        var rng = new Random(20240601);
        var cases = new Dictionary<string, Case>();

        double[] Fill(long[] shape, Func<double> next)
        {
            long n = 1;
            foreach (var d in shape) n *= d;
            return Enumerable.Range(0, (int)n).Select(_ => next()).ToArray();
        }
        // Uniform on [-1, 1].
        GradInput U(params long[] s) => new(s, Fill(s, () => rng.NextDouble() * 2 - 1));
        // Uniform on [0.5, 2] (sqrt, log, pow of a positive base).
        GradInput Pos(params long[] s) => new(s, Fill(s, () => 0.5 + rng.NextDouble() * 1.5));
        // Distinct values 0.1 apart, shuffled, none within 0.015 of 0 or of a multiple of 0.1 offset by 0.075:
        // far from every kink (relu, abs, max, clamp bounds at -0.325 / 0.475) compared with Eps.
        GradInput Distinct(params long[] s)
        {
            long n = 1;
            foreach (var d in s) n *= d;
            var v = Enumerable.Range(0, (int)n).Select(k => (k - n / 2) * 0.1 + 0.025 + (rng.NextDouble() - 0.5) * 0.02).ToArray();
            rng.Shuffle(v);
            return new GradInput(s, v);
        }
        GradInput Split(GradInput all, int offset, params long[] s)
        {
            long n = 1;
            foreach (var d in s) n *= d;
            return new GradInput(s, all.Data.Skip(offset).Take((int)n).ToArray());
        }
        void Add(string name, Func<Tensor[], Tensor> f, params GradInput[] inputs) => cases.Add(name, new Case(f, inputs));

        // ---- elementwise ----
        Add("neg", x => x[0].Neg(), U(2, 3));
        Add("unary minus", x => -x[0], U(2, 3));
        Add("sqrt", x => x[0].Sqrt(), Pos(2, 3));
        Add("exp", x => x[0].Exp(), U(2, 3));
        Add("log", x => x[0].Log(), Pos(2, 3));
        Add("abs", x => x[0].Abs(), Distinct(2, 3));
        Add("relu", x => x[0].Relu(), Distinct(2, 3));
        Add("sigmoid", x => x[0].Sigmoid(), U(2, 3));
        Add("tanh", x => x[0].Tanh(), U(2, 3));
        Add("reciprocal", x => x[0].Reciprocal(), Pos(2, 3));
        Add("reciprocal negative", x => x[0].Reciprocal(), new GradInput([3], [-0.7, -1.3, 0.9]));
        Add("square", x => x[0].Square(), U(2, 3));
        Add("pow scalar 2.5", x => x[0].Pow(2.5), Pos(2, 3));
        Add("pow scalar 3 negative base", x => x[0].Pow(3), U(2, 3));
        Add("pow scalar -1.5", x => x[0].Pow(-1.5), Pos(4));
        Add("pow tensor", x => x[0].Pow(x[1]), Pos(2, 3), U(2, 3));
        Add("pow tensor broadcast", x => x[0].Pow(x[1]), Pos(2, 3), U(3));
        Add("add broadcast [2,3]+[3]", x => x[0] + x[1], U(2, 3), U(3));
        Add("add alpha", x => x[0].Add(x[1], 2.5), U(2, 3), U(2, 1));
        Add("sub broadcast [2,1]-[1,3]", x => x[0] - x[1], U(2, 1), U(1, 3));
        Add("mul broadcast [2,3,4]*[3,1]", x => x[0] * x[1], U(2, 3, 4), U(3, 1));
        Add("mul scalar tensor", x => x[0] * x[1], U(2, 3), U());
        Add("div broadcast [2,3]/[2,1]", x => x[0] / x[1], U(2, 3), Pos(2, 1));
        Add("div broadcast [3]/[2,3]", x => x[0] / x[1], U(3), Pos(2, 3));
        Add("x + 2", x => x[0] + 2, U(2, 3));
        Add("x - 2", x => x[0] - 2, U(2, 3));
        Add("x * 3", x => x[0] * 3, U(2, 3));
        Add("x / 4", x => x[0] / 4, U(2, 3));
        Add("2 + x", x => 2 + x[0], U(2, 3));
        Add("1 - x", x => 1 - x[0], U(2, 3));
        Add("3 * x", x => 3 * x[0], U(2, 3));
        Add("2 / x", x => 2 / x[0], Pos(2, 3));
        Add("matmul 2d", x => x[0].MatMul(x[1]), U(3, 4), U(4, 2));
        Add("matmul batched x 2d", x => x[0].MatMul(x[1]), U(2, 3, 4), U(4, 5));
        Add("matmul batched x batched", x => x[0].MatMul(x[1]), U(2, 3, 4), U(2, 4, 2));
        Add("matmul vector x matrix", x => x[0].MatMul(x[1]), U(4), U(4, 3));
        Add("matmul matrix x vector", x => x[0].MatMul(x[1]), U(3, 4), U(4));
        var mm = Distinct(9);
        Add("maximum broadcast", x => x[0].Maximum(x[1]), Split(mm, 0, 2, 3), Split(mm, 6, 3));
        Add("minimum broadcast", x => x[0].Minimum(x[1]), Split(mm, 0, 2, 3), Split(mm, 6, 3));
        Add("maximum same shape", x => x[0].Maximum(x[1]), Split(mm, 0, 4), Split(mm, 4, 4));
        Add("clamp both", x => x[0].Clamp(-0.325, 0.475), Distinct(3, 5));
        Add("clamp min", x => x[0].Clamp(min: -0.325), Distinct(3, 5));
        Add("clamp max", x => x[0].Clamp(max: 0.475), Distinct(3, 5));
        Add("where broadcast", x => Torch.Where(Torch.From([true, false, true, false, false, true], 2, 3), x[0], x[1]), U(2, 3), U(3));

        // ---- shapes ----
        Add("view", x => x[0].View(4, 6), U(2, 3, 4));
        Add("view -1", x => x[0].View(-1, 2), U(2, 3, 4));
        Add("reshape non-contiguous", x => x[0].Transpose(0, 1).Reshape(6, 4), U(2, 3, 4));
        Add("permute", x => x[0].Permute(2, 0, 1), U(2, 3, 4));
        Add("transpose", x => x[0].Transpose(0, 2), U(2, 3, 4));
        Add("flatten from 1", x => x[0].Flatten(1), U(2, 3, 4));
        Add("flatten all", x => x[0].Flatten(), U(2, 3, 4));
        Add("flatten 0..1", x => x[0].Flatten(0, 1), U(2, 3, 4));
        Add("cat dim 1", x => Torch.Cat([x[0], x[1]], 1), U(2, 3), U(2, 2));
        Add("cat dim 0 three", x => Torch.Cat([x[0], x[1], x[0]], 0), U(1, 3), U(2, 3));
        Add("stack dim 0", x => Torch.Stack([x[0], x[1]]), U(2, 3), U(2, 3));
        Add("stack dim 2", x => Torch.Stack([x[0], x[1]], 2), U(2, 3), U(2, 3));
        Add("index_select repeated", x => x[0].IndexSelect(1, I64(2, 0, 2)), U(2, 3));
        Add("narrow", x => x[0].Narrow(1, 1, 2), U(2, 4));
        Add("unsqueeze", x => x[0].Unsqueeze(1), U(2, 3));
        Add("unsqueeze -1", x => x[0].Unsqueeze(-1), U(2, 3));
        Add("squeeze all", x => x[0].Squeeze(), U(2, 1, 3, 1));
        Add("squeeze dim", x => x[0].Squeeze(1), U(2, 1, 3, 1));
        Add("expand", x => x[0].Expand(2, 3, 4), U(3, 1));
        Add("expand -1", x => x[0].Expand(-1, 5), U(3, 1));
        Add("repeat", x => x[0].Repeat(2, 1, 2), U(2, 3));
        Add("gather", x => x[0].Gather(1, Torch.From(new long[] { 0, 0, 3, 1, 2, 1, 3, 3, 3 }, 3, 3)), U(3, 4));
        Add("index int64 repeated", x => x[0][I64(2, 0, 2)], U(3, 2));
        Add("index bool mask", x => x[0][Torch.From([true, false, true, true])], U(4, 2));
        Add("index i", x => x[0][1], U(3, 2));
        Add("index -1", x => x[0][-1], U(3, 2));

        // ---- reductions ----
        Add("sum all", x => x[0].Sum(), U(2, 3, 4));
        Add("sum dim", x => x[0].Sum(1), U(2, 3, 4));
        Add("sum dims keepdim", x => x[0].Sum([0, 2], keepDim: true), U(2, 3, 4));
        Add("mean all", x => x[0].Mean(), U(2, 3, 4));
        Add("mean dim keepdim", x => x[0].Mean(-1, keepDim: true), U(2, 3, 4));
        Add("mean dims", x => x[0].Mean([0, 1]), U(2, 3, 4));
        Add("var all", x => x[0].Var(), U(2, 3, 4));
        Add("var all biased", x => x[0].Var(unbiased: false), U(2, 3, 4));
        Add("var dim", x => x[0].Var(1), U(2, 3, 4));
        Add("var dim biased keepdim", x => x[0].Var(2, unbiased: false, keepDim: true), U(2, 3, 4));
        Add("std all", x => x[0].Std(), U(2, 3, 4));
        Add("std dim keepdim", x => x[0].Std(0, keepDim: true), U(2, 3, 4));
        Add("max all", x => x[0].Max(), Distinct(3, 4));
        Add("max dim", x => x[0].Max(1), Distinct(3, 4));
        Add("max dim keepdim", x => x[0].Max(0, keepDim: true), Distinct(3, 4));
        Add("min all", x => x[0].Min(), Distinct(3, 4));
        Add("min dim", x => x[0].Min(-1), Distinct(3, 4));
        Add("min dim keepdim", x => x[0].Min(0, keepDim: true), Distinct(3, 4));

        // ---- neural network ----
        Add("conv2d", x => F.Conv2d(x[0], x[1], x[2]), U(2, 2, 5, 5), U(3, 2, 3, 3), U(3));
        Add("conv2d stride 2 padding 1", x => F.Conv2d(x[0], x[1], x[2], stride: 2, padding: 1), U(2, 2, 5, 5), U(3, 2, 3, 3), U(3));
        Add("conv2d groups 2 no bias", x => F.Conv2d(x[0], x[1], null, stride: 2, padding: 1, groups: 2), U(2, 4, 5, 5), U(4, 2, 3, 3));
        Add("conv2d dilation 2", x => F.Conv2d(x[0], x[1], x[2], padding: 2, dilation: 2), U(1, 2, 5, 5), U(2, 2, 3, 3), U(2));
        Add("batch_norm training", x => F.BatchNorm(x[0], null, null, x[1], x[2], training: true), U(4, 3, 2, 2), Pos(3), U(3));
        Add("batch_norm training running stats", x =>
                F.BatchNorm(x[0], Torch.Zeros([3], ScalarType.Float64), Torch.Ones([3], ScalarType.Float64), x[1], x[2], training: true, momentum: 0.3),
            U(4, 3, 2, 2), Pos(3), U(3));
        Add("batch_norm training no affine 2d", x => F.BatchNorm(x[0], null, null, null, null, training: true), U(5, 3));
        var runningMean = U(3).Data;
        var runningVar = Pos(3).Data;
        Add("batch_norm eval running stats", x =>
                F.BatchNorm(x[0], F64(runningMean), F64(runningVar), x[1], x[2], training: false),
            U(4, 3, 2, 2), Pos(3), U(3));
        Add("max_pool2d k2", x => F.MaxPool2d(x[0], 2), Distinct(2, 2, 4, 6));
        Add("max_pool2d k3 s2 p1", x => F.MaxPool2d(x[0], 3, stride: 2, padding: 1), Distinct(1, 2, 5, 5));
        Add("avg_pool2d k2", x => F.AvgPool2d(x[0], 2), U(2, 2, 4, 6));
        Add("avg_pool2d k3 s2 p1", x => F.AvgPool2d(x[0], 3, stride: 2, padding: 1), U(1, 2, 5, 5));
        Add("adaptive_avg_pool2d 5x7 to 3x2", x => F.AdaptiveAvgPool2d(x[0], 3, 2), U(2, 2, 5, 7));
        Add("leaky_relu", x => F.LeakyRelu(x[0], 0.1), Distinct(3, 4));
        Add("linear", x => F.Linear(x[0], x[1], x[2]), U(4, 3), U(2, 3), U(2));
        Add("linear no bias 3d input", x => F.Linear(x[0], x[1]), U(2, 4, 3), U(5, 3));
        Add("log_softmax dim 1", x => F.LogSoftmax(x[0], 1), U(3, 4));
        Add("log_softmax dim 0", x => F.LogSoftmax(x[0], 0), U(3, 4));
        Add("softmax dim 1", x => F.Softmax(x[0], 1), U(3, 4));
        Add("softmax dim -1 3d", x => F.Softmax(x[0], -1), U(2, 2, 3));
        var target = new long[] { 0, 3, 1, 1, 2 };
        Add("cross_entropy mean", x => F.CrossEntropy(x[0], I64(target)), U(5, 4));
        Add("cross_entropy sum", x => F.CrossEntropy(x[0], I64(target), Reduction.Sum), U(5, 4));
        Add("cross_entropy none", x => F.CrossEntropy(x[0], I64(target), Reduction.None), U(5, 4));
        Add("mse_loss mean", x => F.MseLoss(x[0], x[1]), U(3, 4), U(3, 4));
        Add("mse_loss sum", x => F.MseLoss(x[0], x[1], Reduction.Sum), U(3, 4), U(3, 4));
        Add("mse_loss none", x => F.MseLoss(x[0], x[1], Reduction.None), U(3, 4), U(3, 4));
        Add("interpolate bilinear up", x => F.Interpolate(x[0], 5, 7), U(1, 2, 3, 4));
        Add("interpolate bilinear down", x => F.Interpolate(x[0], 3, 5), U(1, 2, 8, 8));
        Add("interpolate bilinear down antialias", x => F.Interpolate(x[0], 3, 5, antialias: true), U(1, 2, 8, 8));
        Add("interpolate bilinear up antialias", x => F.Interpolate(x[0], 5, 7, antialias: true), U(1, 2, 3, 4));
        Add("interpolate bicubic down antialias", x => F.Interpolate(x[0], 3, 3, InterpolationMode.Bicubic, antialias: true), U(1, 1, 7, 6));
        Add("interpolate area", x => F.Interpolate(x[0], 3, 2, InterpolationMode.Area), U(1, 2, 7, 5));
        // Dropout draws a new mask on every call; resetting the generator makes each evaluation use the same one.
        var dropoutGenerator = new Generator(7);
        var dropoutState = dropoutGenerator.GetState().DetachFromScope();
        Add("dropout fixed generator", x =>
        {
            dropoutGenerator.SetState(dropoutState);
            return F.Dropout(x[0], 0.4, training: true, dropoutGenerator);
        }, U(4, 5));
        Add("dropout eval", x => F.Dropout(x[0], 0.4, training: false), U(4, 5));

        // ---- composites ----
        Add("mlp", x => F.LogSoftmax(F.Linear(F.Linear(x[0], x[1], x[2]).Tanh(), x[3]), 1), U(3, 4), U(5, 4), U(5), U(2, 5));
        return cases;
    }
}
