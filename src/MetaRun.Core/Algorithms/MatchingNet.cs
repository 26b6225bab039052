using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra 2016). No inner
/// loop: the model's body embeds support and query examples, a query attends over the support
/// set with the softmax of its cosine similarities, and its class distribution is the
/// attention-weighted sum of the support labels:
///   a(x̂, x_i) = softmax_i cos(f(x̂), g(x_i)),   P(y | x̂, S) = Σ_i a(x̂, x_i) · onehot(y_i)
/// trained by the negative log-likelihood of the query labels. Like ProtoNets it has no head,
/// so any number of ways at test time.
///
/// Without full context embeddings (algorithm.fce: false, the default) f = g = the body, f' = g'.
/// With them (the paper's appendix), on the body's D-dimensional embeddings f', g':
///   g(x_i) = h→_i + h←_i + g'(x_i)     a bidirectional LSTM (hidden D, zero initial state) over
///                                      the support set in its episode order, plus a skip connection;
///   for k = 1..K, K = |S|:             an attention LSTM per query, input f'(x̂) at every step,
///     r_{k−1} = Σ_i softmax_i(h_{k−1} · g(x_i)) g(x_i)
///     ĥ_k, c_k = LSTM(f'(x̂), [h_{k−1}, r_{k−1}], c_{k−1})
///     h_k = ĥ_k[:D] + f'(x̂)
///   f(x̂) = h_K.
/// The paper's LSTM state is the concatenation [h, r], so this LSTM's hidden size is 2D and its
/// h part is the first D of its output; the other D are dropped, since the next state's second
/// half is the fresh read r_k. The paper leaves the start open: here ĥ_0 = 0
/// and c_0 = 0, so h_0 = f'(x̂) and the first read r_0 already attends from the query. The LSTM
/// weights (PyTorch's U(±1/√hidden) initialisation from the run's seed) are outer parameters
/// saved as "fce.g.fw.*", "fce.g.bw.*" and "fce.f.*" beside the body.
/// </summary>
public sealed class MatchingNet : EmbeddingLearner
{
    private readonly Tensor[] fce;   // g forward, g backward, f: (w_ih, w_hh, b_ih, b_hh) each

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static MatchingNet From(AlgorithmContext c) => new(c.Model, c.Objective, c.Config.Fce, c.Seed);

    public MatchingNet(IModel model, Objective objective, bool fullContext = false, ulong seed = 0) : base(model, objective)
    {
        if (!fullContext)
        {
            fce = [];
            OuterParameters = base.OuterParameters;
            OuterParameterNames = base.OuterParameterNames;
            return;
        }
        var d = model.Features;
        var device = model.Parameters[0].Device;
        using var g = new Generator(seed + 3);
        var tensors = new List<Tensor>();
        var names = new List<string>();
        void Lstm(string name, long input, long hidden)
        {
            var bound = 1.0 / Math.Sqrt(hidden);
            foreach (var (part, shape) in new[] { ("w_ih", new[] { 4 * hidden, input }), ("w_hh", new[] { 4 * hidden, hidden }), ("b_ih", new[] { 4 * hidden }), ("b_hh", new[] { 4 * hidden }) })
            {
                using var scope = Torch.NewScope();
                tensors.Add((Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g) * (2 * bound) - bound).To(device).MoveToOuterScope().DetachFromScope().RequiresGrad_());
                names.Add($"fce.{name}.{part}");
            }
        }
        Lstm("g.fw", d, d);
        Lstm("g.bw", d, d);
        Lstm("f", d, 2 * d);
        fce = tensors.ToArray();
        OuterParameters = [.. base.OuterParameters, .. fce];
        OuterParameterNames = [.. base.OuterParameterNames, .. names];
    }

    public override IReadOnlyList<Tensor> OuterParameters { get; }
    public override IReadOnlyList<string> OuterParameterNames { get; }
    public bool FullContext => fce.Length > 0;

    /// <summary>log P(y | query, support) for every query and class, [queries, ways].</summary>
    public static Tensor LogProbabilities(Tensor queryEmbeddings, Tensor supportEmbeddings, Tensor supportY, int ways)
    {
        static Tensor Unit(Tensor e) => e / (e.Square().Sum(1, keepDim: true).Sqrt() + 1e-8);
        var attention = F.Softmax(Unit(queryEmbeddings).MatMul(Unit(supportEmbeddings).Transpose(0, 1)), 1);
        // The probabilities sum to one, so as logits to the cross-entropy their log gives −log P(y).
        return (attention.MatMul(OneHot(supportY, ways, attention.DType)) + 1e-8).Log();
    }

    /// <summary>g(x_i) for the support embeddings g'(x_i) [n, D] in episode order: [n, D].</summary>
    public Tensor SupportContext(Tensor support)
    {
        long n = support.Size(0), d = support.Size(1);
        var zero = Torch.Zeros([1, d], support.DType, support.Device);
        var forward = new Tensor[n];
        var backward = new Tensor[n];
        var (h, c) = (zero, zero);
        for (long i = 0; i < n; i++)
        {
            (h, c) = F.LstmCell(support.Narrow(0, i, 1), h, c, fce[0], fce[1], fce[2], fce[3]);
            forward[i] = h;
        }
        (h, c) = (zero, zero);
        for (var i = n - 1; i >= 0; i--)
        {
            (h, c) = F.LstmCell(support.Narrow(0, i, 1), h, c, fce[4], fce[5], fce[6], fce[7]);
            backward[i] = h;
        }
        return Torch.Cat(forward) + Torch.Cat(backward) + support;
    }

    /// <summary>f(x̂) for the query embeddings f'(x̂) [q, D] given the support's g(x_i) [n, D]: [q, D], K = n steps.</summary>
    public Tensor QueryContext(Tensor query, Tensor supportContext)
    {
        long q = query.Size(0), d = query.Size(1), steps = supportContext.Size(0);
        var h = query;
        var c = Torch.Zeros([q, 2 * d], query.DType, query.Device);
        var gT = supportContext.Transpose(0, 1);
        for (long k = 0; k < steps; k++)
        {
            var r = F.Softmax(h.MatMul(gT), 1).MatMul(supportContext);
            var (hHat, next) = F.LstmCell(query, Torch.Cat([h, r], 1), c, fce[8], fce[9], fce[10], fce[11]);
            (h, c) = (hHat.Narrow(1, 0, d) + query, next);
        }
        return h;
    }

    protected override Tensor Logits(Tensor query, Tensor support, Tensor supportY, int ways)
    {
        if (!FullContext) return LogProbabilities(query, support, supportY, ways);
        var g = SupportContext(support);
        return LogProbabilities(QueryContext(query, g), g, supportY, ways);
    }

    /// <summary>With full context embeddings, the support's g(x_i) (what queries attend to) instead of the body's embeddings.</summary>
    protected override IEnumerable<KeyValuePair<string, Tensor>> AdaptedState(Tensor support, Tensor supportY, int ways) =>
        base.AdaptedState(FullContext ? SupportContext(support) : support, supportY, ways);

    public override void Dispose()
    {
        foreach (var t in fce) t.Dispose();
        base.Dispose();
    }
}
