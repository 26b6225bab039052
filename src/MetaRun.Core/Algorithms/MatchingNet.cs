using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra 2016), without
/// full context embeddings. No inner loop: the model's body embeds support and query examples,
/// a query attends over the support set with the softmax of its cosine similarities, and its
/// class distribution is the attention-weighted sum of the support labels:
///   a(x̂, x_i) = softmax_i cos(f(x̂), f(x_i)),   P(y | x̂, S) = Σ_i a(x̂, x_i) · onehot(y_i)
/// trained by the negative log-likelihood of the query labels. Like ProtoNets it has no head,
/// so any number of ways at test time. (The paper's full context embeddings — a bidirectional
/// LSTM over the support set and an attention LSTM for the query — are not implemented.)
/// </summary>
public sealed class MatchingNet(IModel model, Objective objective) : EmbeddingLearner(model, objective)
{
    /// <summary>log P(y | query, support) for every query and class, [queries, ways].</summary>
    public static Tensor LogProbabilities(Tensor queryEmbeddings, Tensor supportEmbeddings, Tensor supportY, int ways)
    {
        static Tensor Unit(Tensor e) => e / (e.Square().Sum(1, keepDim: true).Sqrt() + 1e-8);
        var attention = F.Softmax(Unit(queryEmbeddings).MatMul(Unit(supportEmbeddings).Transpose(0, 1)), 1);
        // The probabilities sum to one, so as logits to the cross-entropy their log gives −log P(y).
        return (attention.MatMul(OneHot(supportY, ways, attention.DType)) + 1e-8).Log();
    }

    protected override Tensor Logits(Tensor query, Tensor support, Tensor supportY, int ways) => LogProbabilities(query, support, supportY, ways);
}
