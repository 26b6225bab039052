using LibTorch;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// A model-based (black-box) learner: it reads the support set as context in one forward pass and
/// takes no gradient step at test time (`metarun adapt` says so).
/// </summary>
public interface IModelBased;

/// <summary>
/// The shell the model-based (black-box) learners share (SNAIL, MANN): no inner loop and no
/// gradient step at test time. The model's body embeds every example; the labelled support set,
/// in an order that is a pure function of the run's seed and the episode, becomes a sequence that
/// a network with memory or attention reads, and each query is answered from the state the
/// support left behind, in its own sequence position (no query sees another query or any label
/// it should not). Each learner writes only how the sequence becomes logits.
///
/// The body embeds the episode's examples together, as for every other method (support and
/// query alike; with batch norm its statistics are the episode's, transductive, see README), so
/// the methods compare on equal footing. What the sequence model reads is causal: no label, no
/// later example and no other query reaches a prediction through it (SnailTests, MannTests).
/// The number of ways is the model's head width (the training ways; the head itself is unused).
/// </summary>
public abstract class SequenceLearner : IMetaLearner, IModelBased
{
    private static readonly ParameterRole[] BodyRoles = [ParameterRole.Body, ParameterRole.BatchNorm];
    private readonly List<Tensor> parameters = [];
    private readonly List<string> names = [];
    private readonly ulong seed;

    protected SequenceLearner(IModel model, Objective objective, ulong seed)
    {
        if (objective.IsRegression) throw new ArgumentException($"{GetType().Name} is a classifier");
        (Model, Objective, this.seed) = (model, objective, seed);
        foreach (var i in model.IndicesOf(BodyRoles))
        {
            parameters.Add(model.Parameters[i]);
            names.Add(model.ParameterNames[i]);
        }
        Ways = (int)model.Head(model.Parameters).Weight.Size(0);
    }

    protected IModel Model { get; }
    protected Objective Objective { get; }
    /// <summary>Width of the label inputs and of the logits: the training ways.</summary>
    public int Ways { get; }
    public IReadOnlyList<Tensor> OuterParameters => parameters;
    public IReadOnlyList<string> OuterParameterNames => names;
    private readonly List<Tensor> own = [];

    /// <summary>A weight of the learner's own, U(±1/√fanIn) (PyTorch's default for linear and convolution layers), drawn from <paramref name="g"/>.</summary>
    protected Tensor Weight(string name, long[] shape, long fanIn, Generator g, double? bound = null)
    {
        using var scope = Torch.NewScope();
        var b = bound ?? 1.0 / Math.Sqrt(fanIn);
        var t = (Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g) * (2 * b) - b).To(Model.Parameters[0].Device)
            .MoveToOuterScope().DetachFromScope().RequiresGrad_();
        parameters.Add(t);
        names.Add(name);
        own.Add(t);
        return t;
    }

    /// <summary>
    /// Logits for the support set in its sequence order (each made before its own label is seen;
    /// null if the method predicts only queries) and for every query, [queries, ways].
    /// <paramref name="support"/> [S, F] and <paramref name="supportY"/> [S] are in sequence order.
    /// </summary>
    protected abstract (Tensor? Support, Tensor Query) Logits(Tensor support, Tensor supportY, Tensor query);

    /// <summary>What a support set leaves behind, for saving (the sequence's context, a memory).</summary>
    protected abstract IEnumerable<KeyValuePair<string, Tensor>> AdaptedState(Tensor support, Tensor supportY);

    /// <summary>
    /// The support set's order in the sequence: a permutation that is a pure function of the run's
    /// seed and the episode (a hash of its support examples and labels), so episode i is always
    /// read in the same order, on any rank and after a resume.
    /// </summary>
    public long[] Order(Episode task)
    {
        var h = SplitMix64.Mix(seed ^ 0x5EC0E4CEUL);
        foreach (var t in new[] { task.SupportX, task.SupportY })
        {
            var bytes = t.To(Device.Cpu).Contiguous().ToBytes();
            for (var i = 0; i < bytes.Length; i += 8)
            {
                ulong chunk = 0;
                for (var j = 0; j < 8 && i + j < bytes.Length; j++) chunk |= (ulong)bytes[i + j] << (8 * j);
                h = SplitMix64.Mix(h ^ chunk);
            }
        }
        var rng = new SplitMix64(h);
        var order = Enumerable.Range(0, (int)task.SupportY.Size(0)).Select(i => (long)i).ToArray();
        rng.Shuffle<long>(order);
        return order;
    }

    /// <summary>[examples, ways] one-hot float rows of labels 0..ways−1.</summary>
    protected Tensor OneHot(Tensor labels, ScalarType type) =>
        labels.Unsqueeze(1).Eq(Torch.Arange(Ways).To(labels.Device).Unsqueeze(0)).To(type);

    private (Tensor? Support, Tensor Query, Tensor SupportY, Tensor SupportEmbeddings) Run(Episode task)
    {
        var order = Torch.From(Order(task)).To(task.SupportY.Device);
        var sx = task.SupportX.IndexSelect(0, order);
        var sy = task.SupportY.IndexSelect(0, order);
        var nS = sx.Size(0);
        var all = Model.Embed(Torch.Cat([sx, task.QueryX]), Model.Parameters);
        var embedded = all.Narrow(0, 0, nS);
        var (support, query) = Logits(embedded, sy, all.Narrow(0, nS, all.Size(0) - nS));
        return (support, query, sy, embedded);
    }

    /// <summary>The support set stays as it is; the query inputs are the argument (an attack perturbs them).</summary>
    public Func<Tensor, Tensor> Predictor(Episode task) => x => Run(task with { QueryX = x }).Query;

    /// <summary>The query logits, and the support's context for saving; no gradient step is taken.</summary>
    public AdaptedTask AdaptTo(Episode task)
    {
        using var noGrad = Torch.NoGrad();
        var (_, query, sy, support) = Run(task);
        return new AdaptedTask(query, [.. OuterParameterNames.Zip(OuterParameters, KeyValuePair.Create), .. AdaptedState(support, sy)]);
    }

    /// <summary>
    /// The training loss: cross-entropy over every prediction the sequence makes (the support's,
    /// for a method that predicts them before their labels arrive, as MANN's paper trains, and the queries').
    /// </summary>
    public TaskGradient TaskGradient(Episode task, double weight)
    {
        using var outer = PhaseClock.Time("outer gradient");
        var (support, query, sy, _) = Run(task);
        var loss = support is null ? Objective.Loss(query, task.QueryY)
            : F.CrossEntropy(Torch.Cat([support, query]), Torch.Cat([sy, task.QueryY]));
        var grads = Torch.Grad([loss * weight], OuterParameters, allowUnused: true);
        return new TaskGradient(grads, loss.Item(), Objective.Accuracy(query, task.QueryY));
    }

    /// <summary>Query loss and accuracy: what evaluation scores.</summary>
    public TaskScore Evaluate(Episode task)
    {
        using var noGrad = Torch.NoGrad();
        var (_, query, _, _) = Run(task);
        return Objective.Score(query, task.QueryY);
    }

    public virtual void Dispose()
    {
        foreach (var t in own) t.Dispose();
        Model.Dispose();
        GC.SuppressFinalize(this);
    }
}
