using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// ALFA, Adaptive Learning of hyperparameters for Fast Adaptation (Baik, Choi, Choi, Kim and Lee
/// 2020): MAML whose inner step is θ ← β ⊙ θ − α ⊙ ∇θ L_support, with a learning rate α and a
/// weight-decay factor β per layer (weight tensor) and step, generated for the task at hand by a
/// small meta-learned network g from the layers' state:
///   τ_j = (mean ∇θ_l L, mean θ_l)_l         (2L numbers at step j, for L weight tensors)
///   (a, b) = g(τ_j),  g = Linear(2L, 2L) → ReLU → Linear(2L, 2L)
///   α_lj = α⁰_lj (1 + a_l),  β_lj = β⁰_lj (1 + b_l)
/// with α⁰ (from algorithm.inner_lr) and β⁰ (from 1) learned per layer and step too. g's last
/// layer starts at zero, so training starts from MAML with α = inner_lr; the paper's g outputs
/// (α, β) directly. Second order; g, α⁰ and β⁰ are saved as "alfa.*".
/// </summary>
public sealed class Alfa : UnrolledLearner
{
    private readonly Tensor[] generator;   // W1, b1, W2, b2
    private readonly Tensor alpha0, beta0;  // [steps, L]

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Alfa From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Seed) { CheckpointInnerSteps = c.Config.CheckpointInnerSteps };

    public Alfa(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, ulong seed)
        : base(model, objective, innerSteps, testInnerSteps)
    {
        long layers = model.Parameters.Count, steps = Math.Max(1, Math.Max(innerSteps, testInnerSteps));
        var device = model.Parameters[0].Device;
        using var g = new Generator(seed + 2);
        var bound = 1.0 / Math.Sqrt(2 * layers);
        Tensor First(long[] shape) => Own((Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g) * (2 * bound) - bound).To(device));
        generator = [First([2 * layers, 2 * layers]), First([2 * layers]), Own(Torch.Zeros([2 * layers, 2 * layers], device: device)), Own(Torch.Zeros([2 * layers], device: device))];
        alpha0 = Own(Torch.Full([steps, layers], innerLr, ScalarType.Float32, device));
        beta0 = Own(Torch.Full([steps, layers], 1.0, ScalarType.Float32, device));
        OuterParameters = [.. model.Parameters, .. generator, alpha0, beta0];
        OuterParameterNames = [.. model.ParameterNames, "alfa.g.fc1.weight", "alfa.g.fc1.bias", "alfa.g.fc2.weight", "alfa.g.fc2.bias", "alfa.alpha0", "alfa.beta0"];
    }

    public override IReadOnlyList<Tensor> OuterParameters { get; }
    public override IReadOnlyList<string> OuterParameterNames { get; }

    /// <summary>The per-layer rates α and factors β of step <paramref name="step"/> for the given weights and their gradients: two [L] tensors.</summary>
    public (Tensor Alpha, Tensor Beta) Hyperparameters(IReadOnlyList<Tensor> fast, IReadOnlyList<Tensor> grads, int step)
    {
        var tau = Torch.Cat([.. grads.Select(t => t.Mean().Reshape(1)), .. fast.Select(t => t.Mean().Reshape(1))]);
        var ab = F.Linear(F.Linear(tau, generator[0], generator[1]).Relu(), generator[2], generator[3]) + 1;
        var layers = fast.Count;
        var s = Math.Min(step, (int)alpha0.Size(0) - 1);
        return (alpha0[s] * ab.Narrow(0, 0, layers), beta0[s] * ab.Narrow(0, layers, layers));
    }

    protected override IReadOnlyList<Tensor> Step(InnerData support, int step, IReadOnlyList<Tensor> fast, bool createGraph)
    {
        var loss = Objective.Loss(Model.Forward(support.X, fast), support.Y);
        var grads = Torch.Grad([loss], fast, createGraph: createGraph).Select(t => t!).ToArray();
        var (alpha, beta) = Hyperparameters(fast, grads, step);
        return fast.Select((w, l) => beta[l] * w - alpha[l] * grads[l]).ToArray();
    }
}
