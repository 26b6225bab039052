using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Prototypical Networks (Snell, Swersky and Zemel 2017, Algorithm 1). No inner loop: the
/// model's body embeds every example, each class's prototype is the mean embedding of its
/// support examples, and a query is scored by its negative squared Euclidean distance to each
/// prototype:  logits_qc = −‖f(x_q) − c_c‖².  The body is trained by cross-entropy on these
/// logits. With no per-class head, the training ways may exceed the test ways (the paper trains
/// 60-way on Omniglot); the model's head is never used nor saved.
/// </summary>
public sealed class ProtoNet(IModel model, Objective objective) : EmbeddingLearner(model, objective)
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static ProtoNet From(AlgorithmContext c) => new(c.Model, c.Objective);

    /// <summary>Per-class means of the support embeddings, [ways, features]; labels are 0..ways−1.</summary>
    public static Tensor Prototypes(Tensor supportEmbeddings, Tensor supportY, int ways)
    {
        var oneHot = OneHot(supportY, ways, supportEmbeddings.DType);
        return oneHot.Transpose(0, 1).MatMul(supportEmbeddings) / oneHot.Sum(0).Unsqueeze(1);
    }

    /// <summary>−‖q − c‖² for every query and prototype: [queries, ways].</summary>
    public static Tensor Logits(Tensor queryEmbeddings, Tensor prototypes) =>
        -(queryEmbeddings.Unsqueeze(1) - prototypes.Unsqueeze(0)).Square().Sum(2);

    protected override Tensor Logits(Tensor query, Tensor support, Tensor supportY, int ways) => Logits(query, Prototypes(support, supportY, ways));

    protected override IEnumerable<KeyValuePair<string, Tensor>> AdaptedState(Tensor support, Tensor supportY, int ways) =>
        [KeyValuePair.Create("prototypes", Prototypes(support, supportY, ways))];
}
