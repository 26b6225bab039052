using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Relation Networks (Sung, Yang, Zhang, Xiang, Torr and Hospedales 2018). No inner loop: the
/// model's body is the embedding module f; a class is represented by the sum of its support
/// embeddings, and a learned relation module g scores every (class, query) pair in [0, 1]:
///   r_qc = g([Σ_{i∈c} f(x_i) ; f(x_q)]),   loss = Σ_qc (r_qc − 1[y_q = c])² / (queries · ways)
/// — the paper's mean squared error to the one-hot label, not a cross-entropy. The paper's
/// relation module is two convolution blocks (64 filters) on the concatenated feature maps, then
/// fully connected layers of 8 units and 1 (sigmoid). MetaRun's embeddings are pooled vectors,
/// so the two convolution blocks become one fully connected layer of 64 units:
/// 2F → 64 → 8 → 1, ReLU between. Its weights are saved as "relation.*" beside the body; no
/// head, so any number of ways at test time.
/// </summary>
public sealed class RelationNet : EmbeddingLearner
{
    private static readonly int[] Widths = [64, 8, 1];
    private readonly Tensor[] relation;

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static RelationNet From(AlgorithmContext c) => new(c.Model, c.Objective, c.Seed);

    public RelationNet(IModel model, Objective objective, ulong seed) : base(model, objective)
    {
        // PyTorch's default linear initialization, U(±1/√fan_in), from the run's seed.
        using var g = new Generator(seed + 1);
        var features = model.Features;
        Tensor Uniform(long[] shape, long fanIn)
        {
            using var scope = Torch.NewScope();
            var bound = 1.0 / Math.Sqrt(fanIn);
            var device = model.Parameters[0].Device;
            return (Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g) * (2 * bound) - bound).To(device).MoveToOuterScope().DetachFromScope().RequiresGrad_();
        }
        var layers = new List<Tensor>();
        var names = new List<string>();
        var fanIn = 2 * features;
        for (var l = 0; l < Widths.Length; l++)
        {
            layers.Add(Uniform([Widths[l], fanIn], fanIn));
            layers.Add(Uniform([Widths[l]], fanIn));
            names.AddRange([$"relation.fc{l + 1}.weight", $"relation.fc{l + 1}.bias"]);
            fanIn = Widths[l];
        }
        relation = layers.ToArray();
        OuterParameters = [.. base.OuterParameters, .. relation];
        OuterParameterNames = [.. base.OuterParameterNames, .. names];
    }

    public override IReadOnlyList<Tensor> OuterParameters { get; }
    public override IReadOnlyList<string> OuterParameterNames { get; }

    /// <summary>Relation scores in [0, 1] for every query and class: [queries, ways].</summary>
    protected override Tensor Logits(Tensor query, Tensor support, Tensor supportY, int ways)
    {
        var classes = OneHot(supportY, ways, support.DType).Transpose(0, 1).MatMul(support);     // [ways, F], summed over shots
        long q = query.Size(0), f = query.Size(1);
        var pairs = Torch.Cat([classes.Unsqueeze(0).Expand(q, ways, f), query.Unsqueeze(1).Expand(q, ways, f)], 2);
        var x = pairs;
        for (var l = 0; l < Widths.Length; l++)
        {
            x = F.Linear(x, relation[2 * l], relation[2 * l + 1]);
            x = l < Widths.Length - 1 ? x.Relu() : x.Sigmoid();
        }
        return x.Squeeze(2);
    }

    protected override Tensor Loss(Tensor scores, Tensor queryY) => F.MseLoss(scores, OneHot(queryY, (int)scores.Size(1), scores.DType));

    public override void Dispose()
    {
        foreach (var t in relation) t.Dispose();
        base.Dispose();
    }
}
