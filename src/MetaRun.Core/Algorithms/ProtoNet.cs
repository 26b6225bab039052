using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Prototypical Networks (Snell, Swersky and Zemel 2017, Algorithm 1). No inner loop: the
/// model's body embeds every example, each class's prototype is the mean embedding of its
/// support examples, and a query is scored by its negative squared Euclidean distance to each
/// prototype:  logits_qc = −‖f(x_q) − c_c‖².  The body is trained by cross-entropy on these
/// logits. With no per-class head, the training ways may exceed the test ways (the paper trains
/// 60-way on Omniglot); the model's head is never used nor saved.
/// </summary>
public sealed class ProtoNet(IModel model, Objective objective) : IMetaLearner
{
    private static readonly ParameterRole[] BodyRoles = [ParameterRole.Body, ParameterRole.BatchNorm];
    private readonly Tensor[] body = model.IndicesOf(BodyRoles).Select(i => model.Parameters[i]).ToArray();
    private readonly string[] names = model.IndicesOf(BodyRoles).Select(i => model.ParameterNames[i]).ToArray();

    public IReadOnlyList<Tensor> OuterParameters => body;
    public IReadOnlyList<string> OuterParameterNames => names;

    /// <summary>Per-class means of the support embeddings, [ways, features]; labels are 0..ways−1.</summary>
    public static Tensor Prototypes(Tensor supportEmbeddings, Tensor supportY, int ways)
    {
        var oneHot = supportY.Unsqueeze(1).Eq(Torch.Arange(ways).To(supportY.Device).Unsqueeze(0)).To(supportEmbeddings.DType);
        return oneHot.Transpose(0, 1).MatMul(supportEmbeddings) / oneHot.Sum(0).Unsqueeze(1);
    }

    /// <summary>−‖q − c‖² for every query and prototype: [queries, ways].</summary>
    public static Tensor Logits(Tensor queryEmbeddings, Tensor prototypes) =>
        -(queryEmbeddings.Unsqueeze(1) - prototypes.Unsqueeze(0)).Square().Sum(2);

    private Tensor Score(Episode task)
    {
        // Support and query pass through the body together: batch norm sees the whole episode,
        // as it does in MAML's query pass (transductive batch statistics; see README).
        var nS = task.SupportX.Size(0);
        var all = model.Embed(Torch.Cat([task.SupportX, task.QueryX]), model.Parameters);
        var ways = (int)task.SupportY.Max().Item() + 1;
        var prototypes = Prototypes(all.Narrow(0, 0, nS), task.SupportY, ways);
        return Logits(all.Narrow(0, nS, all.Size(0) - nS), prototypes);
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        using var outer = PhaseClock.Time("outer gradient");
        var logits = Score(task);
        var loss = objective.Loss(logits, task.QueryY);
        var grads = Torch.Grad([loss * weight], body, allowUnused: true);
        return new TaskGradient(grads, loss.Item(), objective.Accuracy(logits, task.QueryY));
    }

    public TaskScore Evaluate(Episode task)
    {
        using var noGrad = Torch.NoGrad();
        return objective.Score(Score(task), task.QueryY);
    }

    public void Dispose() => model.Dispose();
}
