using LibTorch;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Transfer learning, the baseline the few-shot literature compares against first (Chen et al.
/// 2019, "A Closer Look at Few-shot Classification", §4; Tian et al. 2020): no meta-learning.
///   start: the body from model.init (a pretrained network; model.freeze keeps chosen layers
///     fixed) or drawn, then ordinary training of body + head over all training classes on
///     mini-batches (algorithm.batch_size), as baseline does;
///   each test episode: a fresh linear head, and
///     algorithm.finetune: head — only the head is trained on the support features of the fixed body;
///     algorithm.finetune: all  — the head and every trained weight of the body (frozen layers stay),
///       on copies, so episodes never affect one another;
///     algorithm.test_inner_steps full-batch steps of algorithm.inner_optimizer (SGD with momentum
///     0.9 and weight decay 0.001, or Adam) at algorithm.inner_lr on the support cross-entropy;
///     then the queries are scored.
/// </summary>
public sealed class Finetune : IMetaLearner, ITrainingBatchSource
{
    private readonly IModel model;
    private readonly Objective objective;
    private readonly Baseline pretraining;
    private readonly double lr;
    private readonly int steps;
    private readonly bool adam;
    private readonly FinetuneScope scope;

    public Finetune(IModel model, Objective objective, Baseline pretraining, double lr, int steps, bool adam, FinetuneScope scope)
    {
        (this.model, this.objective, this.pretraining, this.lr, this.steps, this.adam, this.scope) = (model, objective, pretraining, lr, steps, adam, scope);
    }

    public static Finetune From(AlgorithmContext c)
    {
        var a = c.Config;
        return new Finetune(c.Model, c.Objective, Baseline.From(c, cosine: false), a.InnerLr, a.EffectiveTestInnerSteps, a.InnerOptimizer == OptimizerKind.Adam, a.Finetune);
    }

    public IReadOnlyList<Tensor> OuterParameters => model.Parameters;
    public IReadOnlyList<string> OuterParameterNames => model.ParameterNames;

    /// <summary>Pretraining: baseline's, an ordinary classifier over the training classes.</summary>
    public MetaBatch TrainingBatch(long index) => pretraining.TrainingBatch(index);

    public TaskGradient TaskGradient(Episode batch, double weight) => pretraining.TaskGradient(batch, weight);

    public TaskScore Evaluate(Episode task)
    {
        if (scope == FinetuneScope.Head) return pretraining.Evaluate(task);
        var logits = AdaptTo(task).Logits;
        using var noGrad = Torch.NoGrad();
        return objective.Score(logits, task.QueryY);
    }

    public AdaptedTask AdaptTo(Episode task)
    {
        if (scope == FinetuneScope.Head) return pretraining.AdaptTo(task);
        var w = FitAll(task);
        using var noGrad = Torch.NoGrad();
        return new AdaptedTask(model.Forward(task.QueryX, w), [.. model.ParameterNames.Select((n, i) => KeyValuePair.Create(n, w[i].Detach()))]);
    }

    public Func<Tensor, Tensor> Predictor(Episode task)
    {
        if (scope == FinetuneScope.Head) return pretraining.Predictor(task);
        var w = FitAll(task);
        return x => model.Forward(x, w);
    }

    /// <summary>Copies of the trained weights with a fresh head, fine-tuned on the support set.</summary>
    private Tensor[] FitAll(Episode task)
    {
        var ways = (int)task.SupportY.Max().Item() + 1;
        var head = model.IndicesOf(ParameterRole.HeadWeight)[0];
        var headBias = model.IndicesOf(ParameterRole.HeadBias)[0];
        var features = model.Parameters[head].Size(1);
        // A fresh head, PyTorch's default linear initialization, from a fixed generator: evaluation repeats (as baseline's).
        using var g = new Generator(0);
        var bound = 1.0 / Math.Sqrt(features);
        var device = model.Parameters[head].Device;
        Tensor Init(long[] shape) => (Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g) * (2 * bound) - bound).To(device);
        var w = model.Parameters.Select((p, i) =>
            (i == head ? Init([ways, features]) : i == headBias ? Init([ways]) : p.Detach().Clone()).RequiresGrad_()).ToArray();
        using Optimizer opt = adam ? new Adam(w, lr) : new Sgd(w, lr, momentum: 0.9, weightDecay: 0.001);
        for (var s = 0; s < steps; s++)
        {
            using var stepScope = Torch.NewScope();
            var loss = objective.Loss(model.Forward(task.SupportX, w), task.SupportY);
            opt.Step(Torch.Grad([loss], w, allowUnused: true));
        }
        return w;
    }

    public void Dispose() => pretraining.Dispose();
}
