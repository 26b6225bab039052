using LibTorch;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Meta-Learning Domain Generalization (Li, Yang, Song and Hospedales 2018, Algorithm 1), with
/// the prototypical loss L(θ; episode) of ProtoNets as the task loss (as Meta Face Recognition,
/// Guo et al. 2020, pairs domain-split meta-learning with a metric loss). The training classes
/// are grouped into domains (Omniglot alphabets; a folder data set's domain folders). Each task
/// draws algorithm.domains distinct training domains and one N-way K-shot episode from each; the
/// last is held out as meta-test, the others are meta-train:
///   L_tr(θ) = mean over meta-train domains d of L(θ; episode_d)
///   θ'      = θ − α ∇θ L_tr(θ)                 (algorithm.inner_steps steps at inner_lr; second order)
///   outer loss = L_tr(θ) + β · L(θ'; episode_held-out)    (β = algorithm.meta_test_weight)
/// and the outer step descends its gradient, averaged over the meta-batch's tasks: the model is
/// pushed toward weights whose improvement on some domains also improves an unseen one. The
/// task's metrics are the held-out domain's query loss and accuracy after the meta-train step.
/// Test (any ways; no head is trained): algorithm.test_inner_steps 0 is nearest prototype with θ
/// (generalisation without fine-tuning); more steps fine-tune body and a prototype-initialised
/// linear head on the support set first (see <see cref="AdaptTo"/>).
/// </summary>
public sealed class Mldg : IMetaLearner, ITrainingBatchSource
{
    private static readonly ParameterRole[] BodyRoles = [ParameterRole.Body, ParameterRole.BatchNorm];
    // Which domains a task draws: a stream of its own, apart from the episodes' generators.
    private const ulong DrawSalt = 0x6D6C646764726177UL;

    private readonly IModel model;
    private readonly Objective objective;
    private readonly ImageTaskFamily? family;
    private readonly EpisodeShape shape;
    private readonly int domainsPerTask, tasks, innerSteps, testInnerSteps;
    private readonly double innerLr, beta;
    private readonly long seed;
    private readonly int[] bodyIndices;
    private readonly Tensor[] body;
    private readonly string[] names;
    // Training domains with at least N classes: the ones a task may draw.
    private readonly int[] eligible;

    /// <param name="family">The training domains' source; null where nothing is trained (`adapt`).</param>
    public Mldg(IModel model, Objective objective, ImageTaskFamily? family, EpisodeShape shape, int domains, int tasks,
        double innerLr, int innerSteps, int testInnerSteps, double metaTestWeight, long seed)
    {
        (this.model, this.objective, this.family, this.shape) = (model, objective, family, shape);
        (domainsPerTask, this.tasks, this.innerLr, this.innerSteps, this.testInnerSteps, beta, this.seed) = (domains, tasks, innerLr, innerSteps, testInnerSteps, metaTestWeight, seed);
        if (domains < 2) throw new ArgumentOutOfRangeException(nameof(domains), "MLDG needs a meta-train and a held-out domain");
        bodyIndices = model.IndicesOf(BodyRoles);
        body = [.. bodyIndices.Select(i => model.Parameters[i])];
        names = [.. bodyIndices.Select(i => model.ParameterNames[i])];
        eligible = family == null ? [] : [.. Enumerable.Range(0, family.Domains.Count).Where(d => family.DomainClasses(d).Count >= shape.Ways)];
    }

    public static Mldg From(AlgorithmContext c)
    {
        var a = c.Config;
        ImageTaskFamily? images = null;
        var shape = c.TrainShape ?? new EpisodeShape(5, 1, 15);
        if (c.Family != null)
        {
            images = c.Family as ImageTaskFamily;
            if (images is not { HasDomains: true })
                throw new ConfigException(images?.Name == FolderDataset.Dataset
                    ? "algorithm.name: mldg holds training domains out, but this folder data set has none; put its training classes in domain folders (train/DOMAIN/CLASS/, see docs/own-data.md)"
                    : $"algorithm.name: mldg holds training domains out, which the {c.Family.Name} task family does not have; use omniglot (alphabets) or a folder data set with domain folders");
            var usable = Enumerable.Range(0, images.Domains.Count).Count(d => images.DomainClasses(d).Count >= shape.Ways);
            if (usable < a.Domains)
                throw new ConfigException($"algorithm.domains: {a.Domains} domains per task, but the {images.Name} training split has {usable} domains with at least {shape.Ways} classes (of {images.Domains.Count}); lower algorithm.domains or data.train.ways");
        }
        // test_inner_steps 0 means no adaptation here (MLDG's claim is generalisation without
        // fine-tuning), not "as in training" as for the MAML family.
        return new Mldg(c.Model, c.Objective, images, shape, a.Domains, a.MetaBatchSize, a.InnerLr, a.InnerSteps, a.TestInnerSteps, a.MetaTestWeight, (long)c.Seed);
    }

    public IReadOnlyList<Tensor> OuterParameters => body;
    public IReadOnlyList<string> OuterParameterNames => names;

    /// <summary>
    /// Task t's training domains for batch <paramref name="index"/>: distinct, drawn uniformly
    /// from the domains with at least N classes; the last is the held-out one.
    /// </summary>
    public int[] DomainsOf(long index, int task)
    {
        var rng = SplitMix64.ForEpisode(seed, Split.Train, index * tasks + task, DrawSalt);
        var picks = new int[domainsPerTask];
        rng.SampleDistinct(eligible.Length, picks);
        return [.. picks.Select(p => eligible[p])];
    }

    /// <summary>
    /// Meta-batch <paramref name="index"/>: meta_batch_size tasks, each algorithm.domains
    /// episodes of the train shape one after another (domain-major); domain d's labels are
    /// offset by d·N, so the packed task reads as one (D·N)-way episode split by domain.
    /// </summary>
    public MetaBatch TrainingBatch(long index)
    {
        if (family == null) throw new InvalidOperationException("this MLDG learner was built without training data");
        var parts = new List<Tensor>[4];
        for (var p = 0; p < 4; p++) parts[p] = [];
        try
        {
            for (var t = 0; t < tasks; t++)
            {
                var chosen = DomainsOf(index, t);
                for (var d = 0; d < chosen.Length; d++)
                {
                    using var b = family.SampleDomain(chosen[d], (index * tasks + t) * domainsPerTask + d, shape);
                    parts[0].Add(b.SupportX.Clone());
                    parts[1].Add(Offset(b.SupportY, d * shape.Ways));
                    parts[2].Add(b.QueryX.Clone());
                    parts[3].Add(Offset(b.QueryY, d * shape.Ways));
                }
            }
            // [1, D·n, …] per domain → [T, D·n, …]: domains along dim 1, tasks along dim 0.
            Tensor Pack(List<Tensor> xs) => Torch.Cat(Enumerable.Range(0, tasks).Select(t => Torch.Cat(xs.GetRange(t * domainsPerTask, domainsPerTask), 1)).ToArray(), 0);
            using var scope = Torch.NewScope();
            return new MetaBatch(Pack(parts[0]).DetachFromScope(), Pack(parts[1]).DetachFromScope(), Pack(parts[2]).DetachFromScope(), Pack(parts[3]).DetachFromScope());
        }
        finally
        {
            foreach (var t in parts.SelectMany(p => p)) t.Dispose();
        }
    }

    private static Tensor Offset(Tensor labels, long by)
    {
        var y = labels.ToArray<long>();
        for (var i = 0; i < y.Length; i++) y[i] += by;
        return Torch.From(y, labels.Shape);
    }

    /// <summary>Domain d's episode of a packed task, labels back to 0..N−1.</summary>
    private Episode DomainEpisode(Episode task, int d)
    {
        long nS = task.SupportX.Size(0) / domainsPerTask, nQ = task.QueryX.Size(0) / domainsPerTask;
        var off = (double)d * shape.Ways;
        return new Episode(task.SupportX.Narrow(0, d * nS, nS), (task.SupportY.Narrow(0, d * nS, nS) - off).To(ScalarType.Int64),
            task.QueryX.Narrow(0, d * nQ, nQ), (task.QueryY.Narrow(0, d * nQ, nQ) - off).To(ScalarType.Int64));
    }

    /// <summary>All of the model's weights with the body replaced by <paramref name="fastBody"/> (the head is never used).</summary>
    private Tensor[] With(IReadOnlyList<Tensor> fastBody)
    {
        var w = model.Parameters.ToArray();
        for (var i = 0; i < bodyIndices.Length; i++) w[bodyIndices[i]] = fastBody[i];
        return w;
    }

    /// <summary>
    /// Support and query embedded together (batch norm sees the whole episode, as in
    /// EmbeddingLearner): [support, features] and [queries, features].
    /// </summary>
    private (Tensor Support, Tensor Query) Embed(IReadOnlyList<Tensor> fastBody, Episode e)
    {
        var nS = e.SupportX.Size(0);
        var all = model.Embed(Torch.Cat([e.SupportX, e.QueryX]), With(fastBody));
        return (all.Narrow(0, 0, nS), all.Narrow(0, nS, all.Size(0) - nS));
    }

    /// <summary>ProtoNet's loss: cross-entropy of the queries' negative squared distances to the support prototypes.</summary>
    private (Tensor Loss, Tensor Logits) ProtoLoss(IReadOnlyList<Tensor> fastBody, Episode e, int ways)
    {
        var (support, query) = Embed(fastBody, e);
        var logits = ProtoNet.Logits(query, ProtoNet.Prototypes(support, e.SupportY, ways));
        return (objective.Loss(logits, e.QueryY), logits);
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        var ways = shape.Ways;
        var episodes = Enumerable.Range(0, domainsPerTask).Select(d => DomainEpisode(task, d)).ToArray();
        var heldOut = episodes[^1];
        Tensor MetaTrainLoss(IReadOnlyList<Tensor> w)
        {
            var sum = ProtoLoss(w, episodes[0], ways).Loss;
            for (var d = 1; d < domainsPerTask - 1; d++) sum = sum + ProtoLoss(w, episodes[d], ways).Loss;
            return sum / (domainsPerTask - 1);
        }
        Tensor trainLoss;
        IReadOnlyList<Tensor> fast = body;
        using (PhaseClock.Time("inner loop"))
        {
            trainLoss = MetaTrainLoss(body);
            var loss = trainLoss;
            for (var s = 0; s < innerSteps; s++)
            {
                if (s > 0) loss = MetaTrainLoss(fast);
                var grads = Torch.Grad([loss], fast, createGraph: true, allowUnused: true);
                fast = fast.Select((w, i) => grads[i] is { } g ? w - innerLr * g : w).ToArray();
            }
        }
        using var outer = PhaseClock.Time("outer gradient");
        var (testLoss, logits) = ProtoLoss(fast, heldOut, ways);
        var total = trainLoss + testLoss * beta;
        var outerGrads = Torch.Grad([total * weight], body, allowUnused: true);
        return new TaskGradient(outerGrads, testLoss.Item(), objective.Accuracy(logits, heldOut.QueryY));
    }

    /// <summary>
    /// Without adaptation (test_inner_steps 0): nearest prototype with θ; the state is the body
    /// and the prototypes. With it: ProtoNet's scores rewritten as a linear head on the
    /// embedding, −‖f − c_k‖² = 2c_k·f − ‖c_k‖² − ‖f‖² (the last term is the same for every class,
    /// so W_k = 2c_k, b_k = −‖c_k‖² gives the same predictions: Proto-MAML, Triantafillou et al.
    /// 2020), then body and head take test_inner_steps SGD steps at inner_lr on the support
    /// cross-entropy. This is sound at 1 shot, where re-computing prototypes from the same
    /// support set that is being fitted would make every support example its own prototype
    /// (distance 0) and leave little to learn; the head starts exactly at the unadapted model
    /// and moves only as far as the support set pulls it. Support and query pass through the
    /// body together, as when scoring, so batch norm's statistics are the same in fine-tuning
    /// and scoring (the query labels are never read).
    /// </summary>
    public AdaptedTask AdaptTo(Episode task)
    {
        var ways = (int)task.SupportY.Max().Item() + 1;
        var (fast, head) = Fit(task, ways);
        using var noGrad = Torch.NoGrad();
        if (head is not { } h)
        {
            var (support, query) = Embed(fast, task);
            var prototypes = ProtoNet.Prototypes(support, task.SupportY, ways);
            return new AdaptedTask(ProtoNet.Logits(query, prototypes), [.. names.Zip(fast, KeyValuePair.Create), KeyValuePair.Create("prototypes", prototypes)]);
        }
        return new AdaptedTask(Score(fast, head, task, ways),
            [.. names.Zip(fast, KeyValuePair.Create), KeyValuePair.Create("head.weight", h.Weight), KeyValuePair.Create("head.bias", h.Bias)]);
    }

    /// <summary>The adapted scorer with the support set fixed; the query inputs are the argument (an attack perturbs them).</summary>
    public Func<Tensor, Tensor> Predictor(Episode task)
    {
        var ways = (int)task.SupportY.Max().Item() + 1;
        var (fast, head) = Fit(task, ways);
        return x => Score(fast, head, task with { QueryX = x }, ways);
    }

    /// <summary>Query logits: nearest prototype without a head, else the fine-tuned linear head.</summary>
    private Tensor Score(IReadOnlyList<Tensor> fast, (Tensor Weight, Tensor Bias)? head, Episode task, int ways)
    {
        var (support, query) = Embed(fast, task);
        return head is { } h ? F.Linear(query, h.Weight, h.Bias) : ProtoNet.Logits(query, ProtoNet.Prototypes(support, task.SupportY, ways));
    }

    /// <summary>The body after test_inner_steps fine-tuning steps and the prototype-initialised head they trained; θ and no head at 0 steps.</summary>
    private (IReadOnlyList<Tensor> Body, (Tensor Weight, Tensor Bias)? Head) Fit(Episode task, int ways)
    {
        if (testInnerSteps == 0) return (body, null);
        using var grad = Torch.EnableGrad();
        Tensor[] fast = [.. body.Select(w => w.Detach())];
        Tensor weight, bias;
        using (Torch.NoGrad())
        {
            var c = ProtoNet.Prototypes(Embed(fast, task).Support, task.SupportY, ways);
            (weight, bias) = (c * 2, -c.Square().Sum(1));
        }
        for (var s = 0; s < testInnerSteps; s++)
        {
            Tensor[] leaves = [.. fast.Select(w => w.Detach().RequiresGrad_()), weight.Detach().RequiresGrad_(), bias.Detach().RequiresGrad_()];
            var support = Embed(leaves[..^2], task).Support;
            var loss = objective.Loss(F.Linear(support, leaves[^2], leaves[^1]), task.SupportY);
            var grads = Torch.Grad([loss], leaves, allowUnused: true);
            using var noGrad = Torch.NoGrad();
            var next = leaves.Select((w, i) => grads[i] is { } g ? w - innerLr * g : w.Detach()).ToArray();
            (fast, weight, bias) = (next[..^2], next[^2], next[^1]);
        }
        return (fast, (weight, bias));
    }

    public TaskScore Evaluate(Episode task)
    {
        var logits = AdaptTo(task).Logits;
        using var noGrad = Torch.NoGrad();
        return objective.Score(logits, task.QueryY);
    }

    public void Dispose() => model.Dispose();
}
