using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Learning to learn by gradient descent by gradient descent (Andrychowicz, Denil, Gómez
/// Colmenarejo, Hoffman, Pfau, Schaul, Shillingford and de Freitas 2016, §2 and Appendix A). The
/// optimizee's weights θ (the model, from its initialisation) are trained on the support set by an
/// LSTM m with weights φ that sees one coordinate at a time, φ shared by all coordinates:
///   ∇_t = ∇θ L_support(θ_t)                                  (an input: ∂∇_t/∂φ = 0, as in the paper)
///   x_t = (log|∇_t| / p, sgn ∇_t)  if |∇_t| ≥ e^−p,  else (−1, e^p ∇_t)      (p = 10)
///   h¹, c¹ = LSTM₁(x_t, h¹, c¹);  h², c² = LSTM₂(h¹, h², c²)               (20 units each)
///   θ_{t+1} = θ_t + s · (W h² + b)                           (linear output, scaled by s = l2l_output_scale)
///   L(φ) = Σ_{t=1..T} L_query(θ_t)                            (every step weighted 1, T = inner_steps)
/// Truncated backpropagation through the optimisation: the T steps run in unrolls of l2l_unroll;
/// each unroll's share of L is differentiated back to the unroll's start, where θ and the LSTM
/// state are constants. The task's gradient is the sum over its unrolls, and the outer optimizer
/// (Adam in the paper) steps φ once per meta-batch, where the paper steps after every unroll.
/// Evaluation runs test_inner_steps steps without a graph and scores the query set. φ (PyTorch's
/// U(±1/√20) from the run's seed) is saved as "l2l.*"; the model's own weights are not trained.
/// </summary>
public sealed class LearnedOptimizer : IMetaLearner
{
    /// <summary>The paper's LSTM width and preprocessing constant p (Appendix A).</summary>
    public const int Hidden = 20;
    public const double P = 10;

    private readonly Tensor[] phi;

    public static LearnedOptimizer From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Seed, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.L2lUnroll, c.Config.L2lOutputScale);

    public LearnedOptimizer(IModel model, Objective objective, ulong seed, int innerSteps, int testInnerSteps, int unroll, double outputScale)
    {
        (Model, Objective, InnerSteps, TestInnerSteps, Unroll, OutputScale) = (model, objective, innerSteps, testInnerSteps, unroll, outputScale);
        using var g = new Generator(seed + 11);
        var shapes = new (string Name, long[] Shape)[]
        {
            ("l2l.lstm1.w_ih", [4 * Hidden, 2]), ("l2l.lstm1.w_hh", [4 * Hidden, Hidden]), ("l2l.lstm1.b_ih", [4 * Hidden]), ("l2l.lstm1.b_hh", [4 * Hidden]),
            ("l2l.lstm2.w_ih", [4 * Hidden, Hidden]), ("l2l.lstm2.w_hh", [4 * Hidden, Hidden]), ("l2l.lstm2.b_ih", [4 * Hidden]), ("l2l.lstm2.b_hh", [4 * Hidden]),
            ("l2l.output.weight", [1, Hidden]), ("l2l.output.bias", [1]),
        };
        var device = model.Parameters[0].Device;
        var bound = 1.0 / Math.Sqrt(Hidden);
        phi = [.. shapes.Select(s =>
        {
            using var scope = Torch.NewScope();
            return (Torch.Rand(s.Shape, ScalarType.Float32, Device.Cpu, g) * (2 * bound) - bound).To(device).MoveToOuterScope().DetachFromScope().RequiresGrad_();
        })];
        OuterParameterNames = [.. shapes.Select(s => s.Name)];
    }

    public IModel Model { get; }
    public Objective Objective { get; }
    public int InnerSteps { get; }
    public int TestInnerSteps { get; }
    public int Unroll { get; }
    public double OutputScale { get; }

    public IReadOnlyList<Tensor> OuterParameters => phi;
    public IReadOnlyList<string> OuterParameterNames { get; }

    /// <summary>The LSTM's carried state for n coordinates: h¹, c¹, h², c² [n, 20].</summary>
    public sealed record State(Tensor H1, Tensor C1, Tensor H2, Tensor C2)
    {
        public static State Zeros(long n, Device device) =>
            new(Torch.Zeros([n, Hidden], device: device), Torch.Zeros([n, Hidden], device: device), Torch.Zeros([n, Hidden], device: device), Torch.Zeros([n, Hidden], device: device));

        public State Detached() => new(Keep(H1), Keep(C1), Keep(H2), Keep(C2));

        private static Tensor Keep(Tensor t) => t.Detach().MoveToOuterScope();
    }

    /// <summary>The paper's preprocessing of a gradient vector [n] into [n, 2] (Appendix A).</summary>
    public static Tensor Preprocess(Tensor grad)
    {
        var g = grad.Detach();
        var big = g.Abs() >= Math.Exp(-P);
        var logMagnitude = Torch.Where(big, g.Abs().Clamp(min: Math.Exp(-P)).Log() / P, Torch.Full(g.Shape, -1, g.DType, g.Device));
        var sign = Torch.Where(big, g.Sign(), g * Math.Exp(P));
        return Torch.Stack([logMagnitude, sign], 1);
    }

    /// <summary>One step of the optimizer for the coordinates' gradient [n]: the update [n] and the next state.</summary>
    public (Tensor Update, State Next) Step(Tensor grad, State s)
    {
        var (h1, c1) = F.LstmCell(Preprocess(grad), s.H1, s.C1, phi[0], phi[1], phi[2], phi[3]);
        var (h2, c2) = F.LstmCell(h1, s.H2, s.C2, phi[4], phi[5], phi[6], phi[7]);
        var update = (h2.MatMul(phi[8].Transpose(0, 1)) + phi[9]).Reshape(-1) * OutputScale;
        return (update, new State(h1, c1, h2, c2));
    }

    /// <summary>The model's initial weights as one vector: θ_0, a constant.</summary>
    public Tensor InitialTheta(Tensor supportX)
    {
        using var noGrad = Torch.NoGrad();
        return Torch.Cat([.. Model.WeightsFor(supportX).Select(w => w.Detach().Reshape(-1))]);
    }

    /// <summary>θ as the model's weights (views of the vector, so gradients reach it).</summary>
    public IReadOnlyList<Tensor> Unflatten(Tensor theta)
    {
        var weights = new Tensor[Model.Parameters.Count];
        long offset = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            var p = Model.Parameters[i];
            weights[i] = theta.Narrow(0, offset, p.NumElements).Reshape(p.Shape);
            offset += p.NumElements;
        }
        return weights;
    }

    /// <summary>L(x, y) at θ.</summary>
    public Tensor LossAt(Tensor theta, Tensor x, Tensor y) => Objective.Loss(Model.Forward(x, Unflatten(theta)), y);

    /// <summary>∇θ L_support(θ) as a constant.</summary>
    public Tensor SupportGradient(Tensor theta, Episode task)
    {
        var leaf = theta.Detach().RequiresGrad_();
        return Torch.Grad([LossAt(leaf, task.SupportX, task.SupportY)], [leaf])[0]!;
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        var theta = InitialTheta(task.SupportX);
        var state = State.Zeros(theta.Size(0), theta.Device);
        var sums = new Tensor?[phi.Length];
        double loss = double.NaN, accuracy = double.NaN;
        using var phase = PhaseClock.Time("unrolls");
        for (var start = 0; start < InnerSteps; start += Unroll)
        {
            using var scope = Torch.NewScope();
            Tensor? meta = null;
            Tensor? output = null;
            for (var t = start; t < Math.Min(start + Unroll, InnerSteps); t++)
            {
                Tensor update;
                (update, state) = Step(SupportGradient(theta, task), state);
                theta = theta + update;
                output = Model.Forward(task.QueryX, Unflatten(theta));
                var l = Objective.Loss(output, task.QueryY);
                meta = meta is null ? l : meta + l;
            }
            var grads = Torch.Grad([meta! * weight], phi, allowUnused: true);
            for (var i = 0; i < phi.Length; i++)
                if (grads[i] is { } gi) sums[i] = (sums[i] is { } s ? s + gi : gi).Detach().MoveToOuterScope();
            using (Torch.NoGrad())
            {
                loss = Objective.Loss(output!, task.QueryY).Item();
                accuracy = Objective.Accuracy(output!, task.QueryY);
            }
            theta = theta.Detach().MoveToOuterScope();
            state = state.Detached();
        }
        return new TaskGradient(sums, loss, accuracy);
    }

    /// <summary>θ after <paramref name="steps"/> steps of the learned optimizer on the support set, as a constant; <paramref name="afterStep"/> sees θ_0, θ_1, ….</summary>
    public Tensor Optimise(Episode task, int steps, Action<Tensor>? afterStep = null)
    {
        var theta = InitialTheta(task.SupportX);
        var state = State.Zeros(theta.Size(0), theta.Device);
        afterStep?.Invoke(theta);
        for (var t = 0; t < steps; t++)
        {
            using var scope = Torch.NewScope();
            var grad = SupportGradient(theta, task);
            using var noGrad = Torch.NoGrad();
            var (update, next) = Step(grad, state);
            theta = (theta + update).MoveToOuterScope();
            state = next.Detached();
            afterStep?.Invoke(theta);
        }
        return theta;
    }

    public AdaptedTask AdaptTo(Episode task)
    {
        var theta = Optimise(task, TestInnerSteps);
        using var noGrad = Torch.NoGrad();
        var weights = Unflatten(theta);
        return new AdaptedTask(Model.Forward(task.QueryX, weights), [.. Model.ParameterNames.Zip(weights, KeyValuePair.Create)]);
    }

    public TaskScore Evaluate(Episode task)
    {
        var logits = AdaptTo(task).Logits;
        using var noGrad = Torch.NoGrad();
        return Objective.Score(logits, task.QueryY);
    }

    public Func<Tensor, Tensor> Predictor(Episode task)
    {
        var weights = Unflatten(Optimise(task, TestInnerSteps));
        return x => Model.Forward(x, weights);
    }

    public void Dispose()
    {
        foreach (var t in phi) t.Dispose();
        Model.Dispose();
        GC.SuppressFinalize(this);
    }
}
