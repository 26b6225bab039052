using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Memory-augmented neural network (Santoro, Bartunov, Botvinick, Wierstra and Lillicrap 2016).
/// No inner loop: the support set (in the order <see cref="SequenceLearner.Order"/> draws) is fed
/// one example per step as x_t = [f(image_t) ; onehot(y_{t−1})] — each label arrives one step
/// late, so the prediction at t is made before y_t is seen — to an LSTM controller with an
/// external memory M (slots × width) and n read heads. Step t, for each head h:
///   h_t, c_t = LSTM([x_t ; r_{t−1}], h_{t−1}, c_{t−1})
///   k_t = tanh(W_k h_t + b_k),  α_t = W_α h_t + b_α                      (key, gate)
///   w^w_t = σ(α_t) w^r_{t−1} + (1 − σ(α_t)) w^lu_{t−1}                  (LRU write weights)
///   M_t(i) = M_{t−1}(i)·[i is not the least-used slot of w^u_{t−1}] + Σ_h w^w_t(i) k_t
///   w^r_t(i) = softmax_i cos(k_t, M_t(i)),   r_t = Σ_i w^r_t(i) M_t(i)   (content read)
///   w^u_t = γ w^u_{t−1} + Σ_h (w^r_t + w^w_t)
///   w^lu_t(i) = 1 if w^u_t(i) ≤ m(w^u_t, n) (the n-th smallest usage), else 0
///   o_t = W_o [h_t ; r_t] + b_o                                          (class logits)
/// Each query then takes one step of its own from the state the support left (its label input
/// the last support label), so no query sees another or its own label. Trained by the
/// cross-entropy of every prediction the sequence makes, support and query, as the paper trains
/// on every step. The paper leaves the start open: M_0 = 10⁻⁶, h, c, r = 0, w^r_0 = 0 and usage a
/// small strict ramp, w^u_0(i) = 10⁻³·(1 − i/slots), so the first writes go to distinct slots.
/// Weights (PyTorch's U(±1/√fan_in) from the run's seed) are saved as "mann.*" beside the body.
/// </summary>
public sealed class Mann : SequenceLearner
{
    private readonly Tensor[] lstm;       // w_ih, w_hh, b_ih, b_hh
    private readonly Tensor[] heads;      // key weight, key bias, gate weight, gate bias
    private readonly Tensor[] output;     // weight, bias

    /// <summary>The paper's Omniglot settings: a 200-unit controller, 128 × 40 memory, 4 read heads, usage decay 0.95.</summary>
    public static Mann From(AlgorithmContext c) => new(c.Model, c.Objective, c.Seed, hidden: 200, slots: 128, width: 40, reads: 4, decay: 0.95);

    public Mann(IModel model, Objective objective, ulong seed, int hidden, int slots, int width, int reads, double decay) : base(model, objective, seed)
    {
        (Hidden, Slots, MemoryWidth, Reads, Decay) = (hidden, slots, width, reads, decay);
        using var g = new Generator(seed + 7);
        var input = model.Features + Ways + reads * width;
        lstm = [Weight("mann.controller.w_ih", [4 * hidden, input], hidden, g), Weight("mann.controller.w_hh", [4 * hidden, hidden], hidden, g),
            Weight("mann.controller.b_ih", [4 * hidden], hidden, g), Weight("mann.controller.b_hh", [4 * hidden], hidden, g)];
        heads = [Weight("mann.key.weight", [reads * width, hidden], hidden, g), Weight("mann.key.bias", [reads * width], hidden, g),
            Weight("mann.gate.weight", [reads, hidden], hidden, g), Weight("mann.gate.bias", [reads], hidden, g)];
        var outIn = hidden + reads * width;
        output = [Weight("mann.output.weight", [Ways, outIn], outIn, g), Weight("mann.output.bias", [Ways], outIn, g)];
    }

    public int Hidden { get; }
    public int Slots { get; }
    public int MemoryWidth { get; }
    public int Reads { get; }
    public double Decay { get; }

    /// <summary>Everything carried from one step to the next, batch B in front: h, c [B, H]; M [B, slots, width]; r [B, n·width]; w^r [B, n, slots]; w^u, w^lu [B, slots].</summary>
    public sealed record State(Tensor H, Tensor C, Tensor Memory, Tensor Read, Tensor ReadWeights, Tensor Usage, Tensor LeastUsed)
    {
        /// <summary>The state repeated over <paramref name="batch"/> rows (from a batch of one).</summary>
        public State Expand(long batch) => new(Rows(H, batch), Rows(C, batch), Rows(Memory, batch), Rows(Read, batch), Rows(ReadWeights, batch), Rows(Usage, batch), Rows(LeastUsed, batch));

        private static Tensor Rows(Tensor t, long batch) => t.Expand([batch, .. t.Shape.Skip(1)]);
    }

    /// <summary>The state before the first step (one sequence).</summary>
    public State Initial(ScalarType type, Device device)
    {
        var usage = (1 - Torch.Arange(0, Slots, 1, type, device) / Slots).Unsqueeze(0) * 1e-3;
        return new State(Torch.Zeros([1, Hidden], type, device), Torch.Zeros([1, Hidden], type, device),
            Torch.Full([1, Slots, MemoryWidth], 1e-6, type, device), Torch.Zeros([1, Reads * MemoryWidth], type, device),
            Torch.Zeros([1, Reads, Slots], type, device), usage, LeastUsedOf(usage));
    }

    /// <summary>w^lu: 1 for the n least-used slots (ties included), 0 elsewhere; no gradient flows through it.</summary>
    private Tensor LeastUsedOf(Tensor usage) => usage.Detach().Le(usage.Detach().KthValue(Reads, 1, keepDim: true)).To(usage.DType);

    /// <summary>One step for inputs x [B, F + ways]: the class logits [B, ways] and the next state.</summary>
    public (Tensor Logits, State Next) Step(Tensor x, State s)
    {
        long b = x.Size(0);
        var (h, c) = F.LstmCell(Torch.Cat([x, s.Read], 1), s.H, s.C, lstm[0], lstm[1], lstm[2], lstm[3]);
        var keys = F.Linear(h, heads[0], heads[1]).Tanh().Reshape(b, Reads, MemoryWidth);
        var gate = F.Linear(h, heads[2], heads[3]).Sigmoid().Unsqueeze(2);                       // [B, n, 1]
        var write = gate * s.ReadWeights + (1 - gate) * s.LeastUsed.Unsqueeze(1);                 // [B, n, slots]
        // The single least-used slot of the previous usage is cleared before the write.
        var oldest = s.Usage.Detach().Le(s.Usage.Detach().Min(1, keepDim: true)).To(x.DType);    // [B, slots]
        var memory = s.Memory * (1 - oldest).Unsqueeze(2) + write.Transpose(1, 2).MatMul(keys);   // [B, slots, width]
        var unitKeys = keys / (keys.Square().Sum(2, keepDim: true).Sqrt() + 1e-8);
        var unitMemory = memory / (memory.Square().Sum(2, keepDim: true).Sqrt() + 1e-8);
        var read = F.Softmax(unitKeys.MatMul(unitMemory.Transpose(1, 2)), 2);                      // [B, n, slots]
        var r = read.MatMul(memory).Reshape(b, Reads * MemoryWidth);
        var usage = Decay * s.Usage + read.Sum(1) + write.Sum(1);
        var logits = F.Linear(Torch.Cat([h, r], 1), output[0], output[1]);
        return (logits, new State(h, c, memory, r, read, usage, LeastUsedOf(usage)));
    }

    /// <summary>
    /// The support sequence's logits [S, ways] (each before its label) and the state after it;
    /// then each query's logits [Q, ways] from one step of its own.
    /// </summary>
    public (Tensor Support, Tensor Query, State AfterSupport) Run(Tensor support, Tensor supportY, Tensor query)
    {
        var labels = OneHot(supportY, support.DType);
        var state = Initial(support.DType, support.Device);
        var previous = Torch.Zeros([1, Ways], support.DType, support.Device);
        var logits = new Tensor[support.Size(0)];
        for (var t = 0; t < logits.Length; t++)
        {
            (logits[t], state) = Step(Torch.Cat([support.Narrow(0, t, 1), previous], 1), state);
            previous = labels.Narrow(0, t, 1);
        }
        long q = query.Size(0);
        var (queryLogits, _) = Step(Torch.Cat([query, previous.Expand(q, Ways)], 1), state.Expand(q));
        return (Torch.Cat(logits), queryLogits, state);
    }

    protected override (Tensor? Support, Tensor Query) Logits(Tensor support, Tensor supportY, Tensor query)
    {
        var (s, q, _) = Run(support, supportY, query);
        return (s, q);
    }

    protected override IEnumerable<KeyValuePair<string, Tensor>> AdaptedState(Tensor support, Tensor supportY)
    {
        var (_, _, state) = Run(support, supportY, support.Narrow(0, 0, 1));
        return [KeyValuePair.Create("memory", state.Memory.Squeeze(0)), KeyValuePair.Create("usage", state.Usage.Squeeze(0))];
    }
}
