using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Relation Networks (Sung, Yang, Zhang, Xiang, Torr and Hospedales 2018). No inner loop: the
/// model's body is the embedding module f; a class is represented by the sum of its support
/// embeddings, and a learned relation module g scores every (class, query) pair in [0, 1]:
///   r_qc = g([Σ_{i∈c} f(x_i) ; f(x_q)]),   loss = Σ_qc (r_qc − 1[y_q = c])² / (queries · ways)
/// — the paper's mean squared error to the one-hot label, not a cross-entropy. The relation
/// module here is two fully connected layers (8 hidden units, ReLU, then a sigmoid) on the
/// concatenated pooled embeddings; the paper's module also starts with two convolution blocks
/// on feature maps, which MetaRun's pooled embeddings do not keep. Its weights are saved as
/// "relation.*" beside the body; no head, so any number of ways at test time.
/// </summary>
public sealed class RelationNet : EmbeddingLearner
{
    private const int Hidden = 8;
    private readonly Tensor[] relation;

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
        relation = [Uniform([Hidden, 2 * features], 2 * features), Uniform([Hidden], 2 * features), Uniform([1, Hidden], Hidden), Uniform([1], Hidden)];
        OuterParameters = [.. base.OuterParameters, .. relation];
        OuterParameterNames = [.. base.OuterParameterNames, "relation.fc1.weight", "relation.fc1.bias", "relation.fc2.weight", "relation.fc2.bias"];
    }

    public override IReadOnlyList<Tensor> OuterParameters { get; }
    public override IReadOnlyList<string> OuterParameterNames { get; }

    /// <summary>Relation scores in [0, 1] for every query and class: [queries, ways].</summary>
    protected override Tensor Logits(Tensor query, Tensor support, Tensor supportY, int ways)
    {
        var classes = OneHot(supportY, ways, support.DType).Transpose(0, 1).MatMul(support);     // [ways, F], summed over shots
        long q = query.Size(0), f = query.Size(1);
        var pairs = Torch.Cat([classes.Unsqueeze(0).Expand(q, ways, f), query.Unsqueeze(1).Expand(q, ways, f)], 2);
        var hidden = F.Linear(pairs, relation[0], relation[1]).Relu();
        return F.Linear(hidden, relation[2], relation[3]).Sigmoid().Squeeze(2);
    }

    protected override Tensor Loss(Tensor scores, Tensor queryY) => F.MseLoss(scores, OneHot(queryY, (int)scores.Size(1), scores.DType));

    public override void Dispose()
    {
        foreach (var t in relation) t.Dispose();
        base.Dispose();
    }
}
