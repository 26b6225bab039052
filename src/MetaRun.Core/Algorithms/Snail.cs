using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// SNAIL, the simple neural attentive meta-learner (Mishra, Rohaninejad, Chen and Abbeel 2018).
/// No inner loop: the model's body embeds every example, the N·K labelled support examples (in
/// the order <see cref="SequenceLearner.Order"/> draws) followed by one query form a sequence of
/// [f(x_t) ; onehot(y_t)] (the query's label part is zero), and a causal network over the sequence
/// predicts the query's class at its position. Every query gets its own sequence, as in the paper,
/// so no query sees another. The network interleaves (paper, section 3 and appendix):
///   DenseBlock(X, R, D):  a = tanh(CausalConv(X, R, D)) ⊙ σ(CausalConv(X, R, D));  X ← [X ; a]
///     (kernel 2, dilation R: position t reads t and t − R, never a later one)
///   TCBlock(X, T, D):     DenseBlock(X, 2^i, D) for i = 1 … ⌈log₂ T⌉
///   AttentionBlock(X, K, V):  q, k = XW_q, XW_k (K wide), v = XW_v (V wide);
///     X ← [X ; CausalSoftmax(q kᵀ / √K) v]   (position t attends to positions ≤ t)
/// then a 1×1 convolution to the N class logits. Omniglot's stack (appendix):
/// Attention(64, 32), TC(128), Attention(256, 128), TC(128), Attention(512, 256). Trained by the
/// query's cross-entropy. Its weights (PyTorch's U(±1/√fan_in) from the run's seed) are saved as
/// "snail.*" beside the body.
/// </summary>
public sealed class Snail : SequenceLearner
{
    /// <summary>One block: attention (key and value widths) or temporal convolution (filters per dense block).</summary>
    public sealed record Block(bool Attention, int Width, int Value = 0)
    {
        public static Block Attend(int key, int value) => new(true, key, value);
        public static Block Tc(int filters) => new(false, filters);
    }

    /// <summary>The paper's Omniglot stack.</summary>
    public static readonly IReadOnlyList<Block> PaperBlocks =
        [Block.Attend(64, 32), Block.Tc(128), Block.Attend(256, 128), Block.Tc(128), Block.Attend(512, 256)];

    private readonly IReadOnlyList<Block> blocks;
    private readonly int length;
    private readonly List<Tensor[]> weights = [];

    /// <summary>The registry's constructor: the paper's stack over sequences of train shots·ways + 1.</summary>
    public static Snail From(AlgorithmContext c) => new(c.Model, c.Objective, c.Seed, PaperBlocks, c.TrainShape?.Shots ?? 1);

    /// <param name="shots">Support examples per class: the sequence is ways·shots + 1 long, which sets the dilations.</param>
    public Snail(IModel model, Objective objective, ulong seed, IReadOnlyList<Block> blocks, int shots) : base(model, objective, seed)
    {
        this.blocks = blocks;
        length = Ways * shots + 1;
        using var g = new Generator(seed + 5);
        var channels = model.Features + Ways;
        for (var b = 0; b < blocks.Count; b++)
        {
            var block = blocks[b];
            if (block.Attention)
            {
                weights.Add([
                    Weight($"snail.block{b}.query.weight", [block.Width, channels], channels, g), Weight($"snail.block{b}.query.bias", [block.Width], channels, g),
                    Weight($"snail.block{b}.key.weight", [block.Width, channels], channels, g), Weight($"snail.block{b}.key.bias", [block.Width], channels, g),
                    Weight($"snail.block{b}.value.weight", [block.Value, channels], channels, g), Weight($"snail.block{b}.value.bias", [block.Value], channels, g)]);
                channels += block.Value;
                continue;
            }
            // The filter and gate convolutions of a dense block as one of 2D outputs (the first D filter, the last D gate).
            var dense = new List<Tensor>();
            for (var i = 1; i <= Dilations; i++)
            {
                dense.Add(Weight($"snail.block{b}.dense{i}.weight", [2 * block.Width, channels, 2], 2 * channels, g));
                dense.Add(Weight($"snail.block{b}.dense{i}.bias", [2 * block.Width], 2 * channels, g));
                channels += block.Width;
            }
            weights.Add([.. dense]);
        }
        weights.Add([Weight("snail.output.weight", [Ways, channels], channels, g), Weight("snail.output.bias", [Ways], channels, g)]);
    }

    /// <summary>Dense blocks per TC block: ⌈log₂ T⌉ for sequences of length T.</summary>
    private int Dilations => (int)Math.Ceiling(Math.Log2(length));

    /// <summary>The network over sequences [B, T, C]: logits at every position, [B, T, ways].</summary>
    public Tensor Forward(Tensor x)
    {
        var t = x.Size(1);
        var causal = Torch.Arange(t).Unsqueeze(1).Ge(Torch.Arange(t).Unsqueeze(0)).To(x.Device);
        for (var b = 0; b < blocks.Count; b++)
        {
            var w = weights[b];
            if (blocks[b].Attention)
            {
                var q = F.Linear(x, w[0], w[1]);
                var k = F.Linear(x, w[2], w[3]);
                var v = F.Linear(x, w[4], w[5]);
                var p = F.MaskedSoftmax(q.MatMul(k.Transpose(1, 2)) / Math.Sqrt(blocks[b].Width), causal, -1);
                x = Torch.Cat([x, p.MatMul(v)], 2);
                continue;
            }
            var d = blocks[b].Width;
            for (var i = 1; i <= Dilations; i++)
            {
                var y = F.CausalConv1d(x.Transpose(1, 2), w[2 * (i - 1)], w[2 * (i - 1) + 1], dilation: 1 << i);
                var a = y.Narrow(1, 0, d).Tanh() * y.Narrow(1, d, d).Sigmoid();
                x = Torch.Cat([x, a.Transpose(1, 2)], 2);
            }
        }
        var output = weights[^1];
        return F.Linear(x, output[0], output[1]);
    }

    /// <summary>The sequences [queries, S + 1, F + ways]: the labelled support set, then one query with a zero label.</summary>
    public Tensor Sequences(Tensor support, Tensor supportY, Tensor query)
    {
        long s = support.Size(0), q = query.Size(0);
        var labelled = Torch.Cat([support, OneHot(supportY, support.DType)], 1);
        var unlabelled = Torch.Cat([query, Torch.Zeros([q, Ways], query.DType, query.Device)], 1);
        return Torch.Cat([labelled.Unsqueeze(0).Expand(q, s, labelled.Size(1)), unlabelled.Unsqueeze(1)], 1);
    }

    protected override (Tensor? Support, Tensor Query) Logits(Tensor support, Tensor supportY, Tensor query)
    {
        var s = support.Size(0);
        return (null, Forward(Sequences(support, supportY, query)).Narrow(1, s, 1).Squeeze(1));
    }

    protected override IEnumerable<KeyValuePair<string, Tensor>> AdaptedState(Tensor support, Tensor supportY) =>
        [KeyValuePair.Create("support_embeddings", support), KeyValuePair.Create("support_labels", supportY)];
}
