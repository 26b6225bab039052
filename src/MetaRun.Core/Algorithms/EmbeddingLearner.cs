using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// The shell the metric learners share (ProtoNets, Matching Networks): no inner loop and no
/// head; the outer parameters are the model's body, and a task is scored by logits over its
/// ways computed from the embeddings of its support and query sets. Each learner writes only
/// how embeddings become logits.
/// </summary>
public abstract class EmbeddingLearner : IMetaLearner
{
    private static readonly ParameterRole[] BodyRoles = [ParameterRole.Body, ParameterRole.BatchNorm];
    private readonly Tensor[] body;
    private readonly string[] names;

    protected EmbeddingLearner(IModel model, Objective objective)
    {
        (Model, Objective) = (model, objective);
        body = model.IndicesOf(BodyRoles).Select(i => model.Parameters[i]).ToArray();
        names = model.IndicesOf(BodyRoles).Select(i => model.ParameterNames[i]).ToArray();
    }

    protected IModel Model { get; }
    protected Objective Objective { get; }
    public virtual IReadOnlyList<Tensor> OuterParameters => body;
    public virtual IReadOnlyList<string> OuterParameterNames => names;

    /// <summary>Scores [queries, ways] from the query and support embeddings (larger: more likely); support labels are 0..ways−1.</summary>
    protected abstract Tensor Logits(Tensor query, Tensor support, Tensor supportY, int ways);

    /// <summary>The training loss of the scores: the objective's cross-entropy unless the method says otherwise.</summary>
    protected virtual Tensor Loss(Tensor scores, Tensor queryY) => Objective.Loss(scores, queryY);

    /// <summary>What a support set adapts the learner to, for saving: by default the support embeddings and labels (ProtoNet: its prototypes).</summary>
    protected virtual IEnumerable<KeyValuePair<string, Tensor>> AdaptedState(Tensor support, Tensor supportY, int ways) =>
        [KeyValuePair.Create("support_embeddings", support), KeyValuePair.Create("support_labels", supportY)];

    private (Tensor Query, Tensor Support, int Ways) Embed(Episode task)
    {
        // Support and query pass through the body together: batch norm sees the whole episode,
        // as it does in MAML's query pass (transductive batch statistics; see README).
        var nS = task.SupportX.Size(0);
        var all = Model.Embed(Torch.Cat([task.SupportX, task.QueryX]), Model.Parameters);
        var ways = (int)task.SupportY.Max().Item() + 1;
        return (all.Narrow(0, nS, all.Size(0) - nS), all.Narrow(0, 0, nS), ways);
    }

    /// <summary>The support set stays as it is; the query inputs are the argument (an attack perturbs them).</summary>
    public Func<Tensor, Tensor> Predictor(Episode task) => x => Score(task with { QueryX = x });

    private Tensor Score(Episode task)
    {
        var (query, support, ways) = Embed(task);
        return Logits(query, support, task.SupportY, ways);
    }

    /// <summary>The query scores (what Evaluate scores); the state is the outer parameters and <see cref="AdaptedState"/>.</summary>
    public AdaptedTask AdaptTo(Episode task)
    {
        using var noGrad = Torch.NoGrad();
        var (query, support, ways) = Embed(task);
        return new AdaptedTask(Logits(query, support, task.SupportY, ways),
            [.. OuterParameterNames.Zip(OuterParameters, KeyValuePair.Create), .. AdaptedState(support, task.SupportY, ways)]);
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        using var outer = PhaseClock.Time("outer gradient");
        var logits = Score(task);
        var loss = Loss(logits, task.QueryY);
        var grads = Torch.Grad([loss * weight], OuterParameters, allowUnused: true);
        return new TaskGradient(grads, loss.Item(), Objective.Accuracy(logits, task.QueryY));
    }

    public TaskScore Evaluate(Episode task)
    {
        using var noGrad = Torch.NoGrad();
        var scores = Score(task);
        return new TaskScore(Loss(scores, task.QueryY).Item(), Objective.Accuracy(scores, task.QueryY));
    }

    /// <summary>[examples, ways] one-hot float rows of labels 0..ways−1.</summary>
    protected static Tensor OneHot(Tensor labels, int ways, ScalarType type) =>
        labels.Unsqueeze(1).Eq(Torch.Arange(ways).To(labels.Device).Unsqueeze(0)).To(type);

    public virtual void Dispose()
    {
        Model.Dispose();
        GC.SuppressFinalize(this);
    }
}
