using static LibTorch.Native;

namespace LibTorch;

/// <summary>
/// A first-order optimizer over a fixed list of parameter tensors. Its state is a set of named
/// tensors plus a step count, so a checkpoint can save it and a resumed run continue exactly.
/// </summary>
public abstract class Optimizer : IDisposable
{
    protected Optimizer(IReadOnlyList<Tensor> parameters, double learningRate)
    {
        Parameters = parameters;
        LearningRate = learningRate;
    }

    public IReadOnlyList<Tensor> Parameters { get; }
    public double LearningRate { get; set; }
    public long StepCount { get; protected set; }

    /// <summary>Updates every parameter from the given gradients (one per parameter; null skips it).</summary>
    public abstract void Step(IReadOnlyList<Tensor?> gradients);

    /// <summary>Updates every parameter from its accumulated .grad.</summary>
    public void Step()
    {
        using var scope = Torch.NewScope();
        Step(Parameters.Select(p => p.Grad).ToArray());
    }

    public void ZeroGrad()
    {
        foreach (var p in Parameters) p.ZeroGrad();
    }

    /// <summary>Named state tensors (copies the caller owns) and the step count.</summary>
    public abstract IReadOnlyDictionary<string, Tensor> StateDict();
    public abstract void LoadStateDict(IReadOnlyDictionary<string, Tensor> state);

    protected static Tensor ZerosLike(Tensor p) => Torch.Zeros(p.Shape, p.DType, p.Device).DetachFromScope();

    protected static Tensor StateTensor(IReadOnlyDictionary<string, Tensor> state, string key) =>
        state.TryGetValue(key, out var t) ? t : throw new InvalidDataException($"optimizer state lacks '{key}'");

    protected static long StateStep(IReadOnlyDictionary<string, Tensor> state) => (long)StateTensor(state, "step").Item();

    protected static Tensor StepTensor(long step) => Torch.Scalar(step, ScalarType.Int64);

    public abstract void Dispose();
}

/// <summary>Stochastic gradient descent with optional (Nesterov) momentum and weight decay, as in PyTorch.</summary>
public sealed class Sgd : Optimizer
{
    private readonly Tensor[] buffers;

    public Sgd(IReadOnlyList<Tensor> parameters, double learningRate, double momentum = 0, double weightDecay = 0, bool nesterov = false)
        : base(parameters, learningRate)
    {
        Momentum = momentum;
        WeightDecay = weightDecay;
        Nesterov = nesterov;
        buffers = momentum == 0 ? [] : parameters.Select(ZerosLike).ToArray();
    }

    public double Momentum { get; }
    public double WeightDecay { get; }
    public bool Nesterov { get; }

    public override void Step(IReadOnlyList<Tensor?> gradients)
    {
        var first = StepCount == 0;
        for (var i = 0; i < Parameters.Count; i++)
        {
            var g = gradients[i];
            if (g == null) continue;
            Check(mr_sgd_step(Parameters[i].Handle, g.Handle, Momentum == 0 ? IntPtr.Zero : buffers[i].Handle, LearningRate, Momentum,
                WeightDecay, Nesterov ? 1 : 0, first ? 1 : 0));
        }
        StepCount++;
    }

    public override IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor> { ["step"] = StepTensor(StepCount) };
        for (var i = 0; i < buffers.Length; i++) d[$"momentum.{i}"] = buffers[i].Clone();
        return d;
    }

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        StepCount = StateStep(state);
        for (var i = 0; i < buffers.Length; i++) buffers[i].CopyFrom(StateTensor(state, $"momentum.{i}"));
    }

    public override void Dispose()
    {
        foreach (var b in buffers) b.Dispose();
    }
}

/// <summary>Adam (Kingma and Ba 2015) with bias correction and optional L2 weight decay, as in PyTorch.</summary>
public sealed class Adam : Optimizer
{
    private readonly Tensor[] m;
    private readonly Tensor[] v;

    public Adam(IReadOnlyList<Tensor> parameters, double learningRate = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weightDecay = 0)
        : base(parameters, learningRate)
    {
        (Beta1, Beta2, Eps, WeightDecay) = (beta1, beta2, eps, weightDecay);
        m = parameters.Select(ZerosLike).ToArray();
        v = parameters.Select(ZerosLike).ToArray();
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }

    public override void Step(IReadOnlyList<Tensor?> gradients)
    {
        StepCount++;
        for (var i = 0; i < Parameters.Count; i++)
        {
            var g = gradients[i];
            if (g == null) continue;
            Check(mr_adam_step(Parameters[i].Handle, g.Handle, m[i].Handle, v[i].Handle, LearningRate, Beta1, Beta2, Eps, WeightDecay, StepCount));
        }
    }

    public override IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor> { ["step"] = StepTensor(StepCount) };
        for (var i = 0; i < m.Length; i++)
        {
            d[$"exp_avg.{i}"] = m[i].Clone();
            d[$"exp_avg_sq.{i}"] = v[i].Clone();
        }
        return d;
    }

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        StepCount = StateStep(state);
        for (var i = 0; i < m.Length; i++)
        {
            m[i].CopyFrom(StateTensor(state, $"exp_avg.{i}"));
            v[i].CopyFrom(StateTensor(state, $"exp_avg_sq.{i}"));
        }
    }

    public override void Dispose()
    {
        foreach (var t in m.Concat(v)) t.Dispose();
    }
}
