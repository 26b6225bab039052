using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Meta-learner LSTM (Ravi and Larochelle 2017, Algorithm 1). The learner's weights θ (all of
/// them, flattened) are the cell state of an LSTM applied to every coordinate with shared
/// weights. For a task, from c_0 (the learned initial weights), T = inner_steps updates on the
/// whole support set, for t = 1..T:
///   L_t, ∇_t ← the learner's support loss and its gradient at θ_{t−1} = c_{t−1}   (inputs: constants)
///   x_t = [pre(L_t), pre(∇_t)]                          (per coordinate, the loss shared by all)
///   h_t, s_t = LSTM(x_t; h_{t−1}, s_{t−1})              (first layer: an ordinary LSTM, 20 units)
///   f_t = σ(W_F·[h_t, c_{t−1}, f_{t−1}] + b_F)          (forget gate: learned shrinkage)
///   i_t = σ(W_I·[h_t, c_{t−1}, i_{t−1}] + b_I)          (input gate: learned rate)
///   c_t = f_t ⊙ c_{t−1} − i_t ⊙ ∇_t
/// then L_query(θ_T = c_T), whose gradient with respect to the meta-learner's weights and c_0 the
/// outer step descends (Adam, the gradient's global norm clipped to outer_grad_clip). As in the
/// paper the learner's loss and gradient are inputs, not differentiated through (no second
/// derivatives); the outer gradient flows back through the chain of cell states and gates.
/// pre(x) = (log|x|/p, sgn x) if |x| ≥ e^−p, else (−1, e^p·x), with p = 10 (Andrychowicz et
/// al. 2016). Initialization as the paper's code: weights U(±0.01), b_F ∈ U(4, 5) and
/// b_I ∈ U(−5, −4), so training starts as gradient descent at rate ≈ 0.01 with little shrinkage;
/// f_0 = i_0 = 0, h_0 = s_0 = 0. The gates read the previous gate values, as the paper writes
/// them (the authors' code feeds the previous pre-activations). Evaluation runs test_inner_steps
/// updates alike.
///
/// Batch norm, as the paper and its code: in meta-training, the batch's statistics for support
/// and query alike; at meta-test, running averages collected over the T support passes (momentum
/// 0.9, the authors' 1-shot setting, restarted for every task) normalize the query set, so no
/// query example's prediction depends on the others. The meta-learner's weights are saved as
/// "meta_lstm.*" beside c_0, which is saved under the model's own names.
/// </summary>
public sealed class MetaLstm : IMetaLearner, IOuterStepAware
{
    /// <summary>Units of the first LSTM layer (the paper's 20).</summary>
    public const int Hidden = 20;
    /// <summary>The preprocessing's p.</summary>
    public const double P = 10;
    /// <summary>Momentum of the meta-test batch-norm running averages.</summary>
    public const double BatchNormMomentum = 0.9;

    private readonly IModel model;
    private readonly Objective objective;
    private readonly int steps, testSteps;
    private readonly double clip;
    private readonly Tensor[] own;
    private readonly long[] sizes;

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static MetaLstm From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.OuterGradClip, c.Seed);

    public MetaLstm(IModel model, Objective objective, int steps, int testSteps, double clip, ulong seed)
    {
        (this.model, this.objective, this.steps, this.testSteps, this.clip) = (model, objective, steps, testSteps, clip);
        sizes = [.. model.Parameters.Select(p => p.NumElements)];
        var device = model.Parameters[0].Device;
        using var g = new Generator(seed + 11);
        Tensor Uniform(long[] shape, double low, double high)
        {
            using var scope = Torch.NewScope();
            return (Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g) * (high - low) + low).To(device)
                .MoveToOuterScope().DetachFromScope().RequiresGrad_();
        }
        own =
        [
            Uniform([4 * Hidden, 4], -0.01, 0.01), Uniform([4 * Hidden, Hidden], -0.01, 0.01),
            Uniform([4 * Hidden], -0.01, 0.01), Uniform([4 * Hidden], -0.01, 0.01),
            Uniform([1, Hidden + 2], -0.01, 0.01), Uniform([1], 4, 5),
            Uniform([1, Hidden + 2], -0.01, 0.01), Uniform([1], -5, -4),
        ];
        OuterParameters = [.. model.Parameters, .. own];
        OuterParameterNames = [.. model.ParameterNames, "meta_lstm.lstm.w_ih", "meta_lstm.lstm.w_hh", "meta_lstm.lstm.b_ih", "meta_lstm.lstm.b_hh",
            "meta_lstm.forget.weight", "meta_lstm.forget.bias", "meta_lstm.input.weight", "meta_lstm.input.bias"];
    }

    public IReadOnlyList<Tensor> OuterParameters { get; }
    public IReadOnlyList<string> OuterParameterNames { get; }

    /// <summary>What the meta-learner carries per coordinate from one update to the next: h, s [P, 20]; c, f, i [P].</summary>
    public sealed record State(Tensor H, Tensor S, Tensor C, Tensor Forget, Tensor Input);

    /// <summary>The state before the first update: c_0 = the learner's initial weights, flattened (differentiable), the rest 0.</summary>
    public State Initial()
    {
        var c = Torch.Cat([.. model.Parameters.Select(p => p.Reshape(-1))]);
        var n = c.Size(0);
        var zeros = Torch.Zeros([n], c.DType, c.Device);
        return new State(Torch.Zeros([n, Hidden], c.DType, c.Device), Torch.Zeros([n, Hidden], c.DType, c.Device), c, zeros, zeros);
    }

    /// <summary>
    /// Andrychowicz et al.'s preprocessing of x (any shape) as [..., 2]. Both branches in closed
    /// form: log(max(|x|, e^−p))/p is −1 exactly where |x| &lt; e^−p, and clamp(e^p·x, −1, 1) is
    /// sgn x exactly where |x| ≥ e^−p.
    /// </summary>
    public static Tensor Preprocess(Tensor x) =>
        Torch.Stack([x.Abs().Clamp(min: Math.Exp(-P)).Log() / P, (x * Math.Exp(P)).Clamp(-1, 1)], -1);

    /// <summary>One update of every coordinate from the learner's support loss (a scalar) and gradient [P].</summary>
    public State Step(State s, Tensor loss, Tensor grad)
    {
        var n = grad.Size(0);
        var x = Torch.Cat([Preprocess(loss.Reshape(1)).Expand(n, 2), Preprocess(grad)], 1);
        var (h, cell) = F.LstmCell(x, s.H, s.S, own[0], own[1], own[2], own[3]);
        var c = s.C.Unsqueeze(1);
        var f = F.Linear(Torch.Cat([h, c, s.Forget.Unsqueeze(1)], 1), own[4], own[5]).Sigmoid().Squeeze(1);
        var i = F.Linear(Torch.Cat([h, c, s.Input.Unsqueeze(1)], 1), own[6], own[7]).Sigmoid().Squeeze(1);
        return new State(h, cell, f * s.C - i * grad, f, i);
    }

    /// <summary>The flat weights [P] as the model's tensors (views, differentiable).</summary>
    public Tensor[] Unflatten(Tensor flat)
    {
        var result = new Tensor[sizes.Length];
        long offset = 0;
        for (var k = 0; k < sizes.Length; k++)
        {
            result[k] = flat.Narrow(0, offset, sizes[k]).Reshape(model.Parameters[k].Shape);
            offset += sizes[k];
        }
        return result;
    }

    /// <summary>
    /// The cell state after <paramref name="updates"/> updates on (x, y). Differentiable in the
    /// meta-learner's weights and c_0 when <paramref name="stats"/> is null (training); at
    /// evaluation without a graph, each support pass collecting batch-norm averages into it.
    /// </summary>
    public Tensor Adapt(Tensor x, Tensor y, int updates, BatchNormRunningStats? stats = null)
    {
        GradMode MetaGraph() => stats == null ? Torch.EnableGrad() : Torch.NoGrad();
        State s;
        using (MetaGraph()) s = Initial();
        for (var t = 0; t < updates; t++)
        {
            // The learner at θ_{t−1} as a constant: its loss and gradient enter as inputs only.
            var theta = s.C.Detach().RequiresGrad_();
            Tensor loss, grad;
            using (Torch.EnableGrad())
            using (stats?.Collect())
            {
                loss = objective.Loss(model.Forward(x, Unflatten(theta)), y);
                grad = Torch.Grad([loss], [theta])[0]!;
            }
            using (MetaGraph()) s = Step(s, loss.Detach(), grad);
        }
        return s.C;
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        Tensor c;
        using (PhaseClock.Time("inner loop")) c = Adapt(task.SupportX, task.SupportY, steps);
        using var phase = PhaseClock.Time("outer gradient");
        var output = model.Forward(task.QueryX, Unflatten(c));
        var loss = objective.Loss(output, task.QueryY);
        var grads = Torch.Grad([loss * weight], OuterParameters, allowUnused: true);
        return new TaskGradient(grads, loss.Item(), objective.Accuracy(output, task.QueryY));
    }

    /// <summary>Adapts with the meta-test settings; the classifier normalizes its inputs with the support passes' averages.</summary>
    public Func<Tensor, Tensor> Predictor(Episode task)
    {
        var stats = new BatchNormRunningStats(BatchNormMomentum);
        var weights = Unflatten(Adapt(task.SupportX, task.SupportY, testSteps, stats));
        // The averages live as long as the adapted weights: both belong to the caller's scope.
        stats.FreeWithCurrentScope();
        return x =>
        {
            using (stats.Apply()) return model.Forward(x, weights);
        };
    }

    public AdaptedTask AdaptTo(Episode task)
    {
        using var stats = new BatchNormRunningStats(BatchNormMomentum);
        var c = Adapt(task.SupportX, task.SupportY, testSteps, stats);
        using var noGrad = Torch.NoGrad();
        var weights = Unflatten(c);
        Tensor logits;
        using (stats.Apply()) logits = model.Forward(task.QueryX, weights);
        return new AdaptedTask(logits, [.. model.ParameterNames.Zip(weights, KeyValuePair.Create)]);
    }

    public TaskScore Evaluate(Episode task)
    {
        var logits = AdaptTo(task).Logits;
        using var noGrad = Torch.NoGrad();
        return objective.Score(logits, task.QueryY);
    }

    /// <summary>The paper's clipping: the whole outer gradient scaled down to global L2 norm outer_grad_clip where it is longer.</summary>
    public double BeforeOuterStep(Tensor?[] gradients, double learningRate)
    {
        if (clip <= 0) return learningRate;
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        var norm = Math.Sqrt(gradients.Where(g => g != null).Sum(g => g!.To(ScalarType.Float64).Square().Sum().Item()));
        if (norm > clip)
            foreach (var g in gradients) g?.Mul_(clip / norm);
        return learningRate;
    }

    public void Dispose()
    {
        foreach (var t in own) t.Dispose();
        model.Dispose();
        GC.SuppressFinalize(this);
    }
}
