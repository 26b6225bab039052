using LibTorch;
using static MetaRun.Tests.LibTorch.TestSupport;

namespace MetaRun.Tests.LibTorch;

/// <summary>
/// SGD and Adam on f(x, y) = (x − 1)² + 3y² + xy, whose gradient is (2(x − 1) + y, 6y + x),
/// against the same update rules written out in double.
/// </summary>
public sealed class OptimizerTests
{
    private const double X0 = 0.5, Y0 = -0.2;

    private static (double, double) Gradient(double x, double y) => (2 * (x - 1) + y, 6 * y + x);

    private static Tensor Loss(Tensor x, Tensor y) => (x - 1).Square() + 3 * y.Square() + x * y;

    public sealed record Config(string Name, double Lr, double Momentum = 0, double WeightDecay = 0, bool Nesterov = false, bool Adam = false,
        double Beta1 = 0.9, double Beta2 = 0.999, double Eps = 1e-8)
    {
        public override string ToString() => Name;

        public Optimizer Create(IReadOnlyList<Tensor> p) => Adam
            ? new Adam(p, Lr, Beta1, Beta2, Eps, WeightDecay)
            : new Sgd(p, Lr, Momentum, WeightDecay, Nesterov);
    }

    private static readonly Config[] Configs =
    [
        new("sgd", 0.1),
        new("sgd momentum", 0.1, Momentum: 0.9),
        new("sgd nesterov", 0.1, Momentum: 0.9, Nesterov: true),
        new("sgd weight decay", 0.1, WeightDecay: 0.1),
        new("sgd nesterov weight decay", 0.05, Momentum: 0.8, WeightDecay: 0.2, Nesterov: true),
        new("adam", 0.1, Adam: true),
        new("adam betas", 0.05, Adam: true, Beta1: 0.5, Beta2: 0.9, Eps: 1e-3),
        new("adam weight decay", 0.1, WeightDecay: 0.3, Adam: true),
    ];

    public static TheoryData<string> ConfigNames
    {
        get
        {
            var d = new TheoryData<string>();
            foreach (var c in Configs) d.Add(c.Name);
            return d;
        }
    }

    /// <summary>PyTorch's update rules, step by step, in plain double arithmetic.</summary>
    private sealed class Reference(Config c)
    {
        private readonly double[] p = [X0, Y0];
        private readonly double[] buf = new double[2];
        private readonly double[] m = new double[2];
        private readonly double[] v = new double[2];
        private int t;

        public double[] Step()
        {
            var (gx, gy) = Gradient(p[0], p[1]);
            double[] g = [gx, gy];
            t++;
            for (var i = 0; i < 2; i++)
            {
                var d = g[i] + c.WeightDecay * p[i];
                if (c.Adam)
                {
                    m[i] = c.Beta1 * m[i] + (1 - c.Beta1) * d;
                    v[i] = c.Beta2 * v[i] + (1 - c.Beta2) * d * d;
                    var mHat = m[i] / (1 - Math.Pow(c.Beta1, t));
                    var denom = Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(c.Beta2, t)) + c.Eps;
                    p[i] -= c.Lr * mHat / denom;
                    continue;
                }
                if (c.Momentum != 0)
                {
                    buf[i] = t == 1 ? d : c.Momentum * buf[i] + d;
                    d = c.Nesterov ? d + c.Momentum * buf[i] : buf[i];
                }
                p[i] -= c.Lr * d;
            }
            return (double[])p.Clone();
        }
    }

    [Theory]
    [MemberData(nameof(ConfigNames))]
    public void StepsEqualTheHandComputedUpdates(string name)
    {
        var c = Configs.Single(k => k.Name == name);
        using var scope = Torch.NewScope();
        var x = F64([X0]).RequiresGrad_();
        var y = F64([Y0]).RequiresGrad_();
        using var opt = c.Create([x, y]);
        var reference = new Reference(c);
        for (var step = 1; step <= 6; step++)
        {
            if (step % 2 == 1)
            {
                // From accumulated .grad.
                Loss(x, y).Sum().Backward();
                opt.Step();
                opt.ZeroGrad();
                Assert.Null(x.Grad);
            }
            else
            {
                // From explicit gradients.
                var g = Torch.Grad([Loss(x, y).Sum()], [x, y]);
                opt.Step(g);
            }
            var expected = reference.Step();
            Assert.Equal(step, opt.StepCount);
            AllClose(expected, [x.Item(), y.Item()], 1e-12, $"{name} step {step}");
        }
    }

    [Fact]
    public void FirstStepsMatchNumbersWorkedOutByHand()
    {
        using var scope = Torch.NewScope();
        // Gradient at (0.5, −0.2): (2(0.5 − 1) − 0.2, 6(−0.2) + 0.5) = (−1.2, −0.7).
        var x = F64([X0]).RequiresGrad_();
        var y = F64([Y0]).RequiresGrad_();
        using (var sgd = new Sgd([x, y], 0.1))
        {
            sgd.Step(Torch.Grad([Loss(x, y).Sum()], [x, y]));
            AllClose([0.62, -0.13], [x.Item(), y.Item()], 1e-15); // p − 0.1 g
        }

        // Momentum 0.9, second step: at (0.62, −0.13) g = (−0.89, −0.16); buf = 0.9(−1.2, −0.7) + g = (−1.97, −0.79).
        var a = F64([X0]).RequiresGrad_();
        var b = F64([Y0]).RequiresGrad_();
        using (var momentum = new Sgd([a, b], 0.1, momentum: 0.9))
        {
            momentum.Step(Torch.Grad([Loss(a, b).Sum()], [a, b]));
            momentum.Step(Torch.Grad([Loss(a, b).Sum()], [a, b]));
            AllClose([0.62 + 0.197, -0.13 + 0.079], [a.Item(), b.Item()], 1e-14);
        }

        // Adam's first step moves each coordinate by lr · g / (|g| + eps): lr against the gradient's sign.
        var u = F64([X0]).RequiresGrad_();
        var w = F64([Y0]).RequiresGrad_();
        using (var adam = new Adam([u, w], 0.1))
        {
            adam.Step(Torch.Grad([Loss(u, w).Sum()], [u, w]));
            AllClose([0.5 + 0.1 * 1.2 / (1.2 + 1e-8), -0.2 + 0.1 * 0.7 / (0.7 + 1e-8)], [u.Item(), w.Item()], 1e-15);
        }
    }

    [Theory]
    [MemberData(nameof(ConfigNames))]
    public void StateRoundTripsThroughSafetensorsWithIdenticalNextSteps(string name)
    {
        var c = Configs.Single(k => k.Name == name);
        using var scope = Torch.NewScope();
        var x = F64([X0]).RequiresGrad_();
        var y = F64([Y0]).RequiresGrad_();
        using var original = c.Create([x, y]);
        for (var i = 0; i < 3; i++) original.Step(Torch.Grad([Loss(x, y).Sum()], [x, y]));

        var state = original.StateDict();
        Assert.Equal(3, (long)state["step"].Item());
        var bytes = Safetensors.Serialize(state, new Dictionary<string, string> { ["optimizer"] = name });
        using var file = Safetensors.Deserialize(bytes);

        var x2 = x.Detach().Clone().RequiresGrad_();
        var y2 = y.Detach().Clone().RequiresGrad_();
        using var resumed = c.Create([x2, y2]);
        resumed.LoadStateDict(file.Tensors);
        Assert.Equal(3, resumed.StepCount);

        var x3 = x.Detach().Clone().RequiresGrad_();
        var y3 = y.Detach().Clone().RequiresGrad_();
        using var fresh = c.Create([x3, y3]);

        for (var i = 0; i < 2; i++)
        {
            original.Step(Torch.Grad([Loss(x, y).Sum()], [x, y]));
            resumed.Step(Torch.Grad([Loss(x2, y2).Sum()], [x2, y2]));
            fresh.Step(Torch.Grad([Loss(x3, y3).Sum()], [x3, y3]));
            Assert.Equal(x.Item(), x2.Item());
            Assert.Equal(y.Item(), y2.Item());
        }
        Assert.Equal(5, resumed.StepCount);
        var stateful = c.Adam || c.Momentum != 0;
        if (stateful) Assert.NotEqual(x.Item(), x3.Item()); // the state matters, so the round trip is a real test
        else Assert.Equal(x.Item(), x3.Item());

        var after = resumed.StateDict();
        var before = original.StateDict();
        foreach (var (key, t) in before) Assert.Equal(t.ToBytes(), after[key].ToBytes());
    }

    [Fact]
    public void LoadingIncompleteStateIsAnInvalidDataException()
    {
        using var scope = Torch.NewScope();
        var x = F64([X0]);
        using var adam = new Adam([x]);
        var e = Assert.Throws<InvalidDataException>(() => adam.LoadStateDict(new Dictionary<string, Tensor> { ["step"] = Torch.Scalar(1, ScalarType.Int64) }));
        Assert.Contains("exp_avg.0", e.Message);
    }

    [Fact]
    public void NullGradientsSkipTheirParameter()
    {
        using var scope = Torch.NewScope();
        var x = F64([1.0]);
        var y = F64([2.0]);
        using var sgd = new Sgd([x, y], 0.5);
        sgd.Step([F64([4.0]), null]);
        Assert.Equal(-1.0, x.Item());
        Assert.Equal(2.0, y.Item());
    }
}
