using LibTorch;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Baseline and Baseline++ of Chen, Liu, Kira, Wang and Huang 2019 ("A Closer Look at Few-shot
/// Classification"): no meta-learning at all.
///   training: one ordinary classifier, body + head over all training classes, on plain
///     mini-batches (algorithm.batch_size) — the trainer draws them from this learner, not episodes;
///   each test episode: freeze the body, train a fresh linear head on the support features
///     (algorithm.test_inner_steps steps of algorithm.inner_optimizer at algorithm.inner_lr), score the queries.
/// Baseline++ replaces the linear heads by cosine-similarity ones, logits = s · cos(f(x), w_c),
/// which the paper finds reduces intra-class variation.
/// </summary>
public sealed class Baseline(IModel model, Objective objective, IClassBatchSource? source, int batchSize, double lr, int steps, bool adam, bool cosine)
    : IMetaLearner, ITrainingBatchSource
{
    public static Baseline From(AlgorithmContext c, bool cosine)
    {
        var a = c.Config;
        // Without a family (`adapt` on new images) nothing is trained, so no batches are needed.
        var source = c.Family == null ? null : c.Family as IClassBatchSource ?? throw new ConfigException(
            $"algorithm.name: {a.Name} pretrains on batches over all training classes, which the {c.Family.Name} task family cannot give; use an image data set (omniglot, miniimagenet, folder)");
        return new Baseline(c.Model, c.Objective, source, a.BatchSize, a.InnerLr, a.EffectiveTestInnerSteps, adam: a.InnerOptimizer == OptimizerKind.Adam, cosine);
    }

    /// <summary>The paper code's cosine scale: 2 for up to 200 classes, 10 above.</summary>
    private static double Scale(long classes) => classes <= 200 ? 2 : 10;

    public IReadOnlyList<Tensor> OuterParameters => model.Parameters;
    public IReadOnlyList<string> OuterParameterNames => model.ParameterNames;

    /// <summary>One pretraining batch as a one-task meta-batch (support = query = the batch).</summary>
    public MetaBatch TrainingBatch(long index)
    {
        var (x, y) = (source ?? throw new InvalidOperationException("this baseline was built without training data")).SampleClassBatch(index, batchSize);
        using (x)
        using (y)
            return new MetaBatch(x.Unsqueeze(0), y.Unsqueeze(0), x.Unsqueeze(0), y.Unsqueeze(0));
    }

    /// <summary>Linear or cosine-similarity head on features.</summary>
    public Tensor Head(Tensor features, Tensor weight, Tensor bias)
    {
        if (!cosine) return F.Linear(features, weight, bias);
        var f = features / (features.Square().Sum(1, keepDim: true).Sqrt() + 1e-8);
        var w = weight / (weight.Square().Sum(1, keepDim: true).Sqrt() + 1e-8);
        return f.MatMul(w.Transpose(0, 1)) * Scale(weight.Size(0));
    }

    public TaskGradient TaskGradient(Episode batch, double weight)
    {
        var w = model.Parameters;
        var (headWeight, headBias) = model.Head(w);
        var logits = Head(model.Embed(batch.SupportX, w), headWeight, headBias);
        var loss = objective.Loss(logits, batch.SupportY);
        var grads = Torch.Grad([loss * weight], w, allowUnused: true);
        return new TaskGradient(grads, loss.Item(), objective.Accuracy(logits, batch.SupportY));
    }

    public TaskScore Evaluate(Episode task)
    {
        var logits = AdaptTo(task).Logits;
        using var noGrad = Torch.NoGrad();
        return objective.Score(logits, task.QueryY);
    }

    /// <summary>The query logits; the state is the frozen body and the new head.</summary>
    public AdaptedTask AdaptTo(Episode task)
    {
        var (head, query) = FitHead(task);
        using var noGrad = Torch.NoGrad();
        var body = model.IndicesOf(ParameterRole.Body, ParameterRole.BatchNorm);
        return new AdaptedTask(Head(query, head[0], head[1]),
            [.. body.Select(i => KeyValuePair.Create(model.ParameterNames[i], model.Parameters[i])), KeyValuePair.Create("head.weight", head[0].Detach()), KeyValuePair.Create("head.bias", head[1].Detach())]);
    }

    /// <summary>The new head on the frozen body; the query inputs are the argument (an attack perturbs them).</summary>
    public Func<Tensor, Tensor> Predictor(Episode task)
    {
        var (head, _) = FitHead(task);
        var nS = task.SupportX.Size(0);
        return x =>
        {
            var all = model.Embed(Torch.Cat([task.SupportX, x]), model.Parameters);
            return Head(all.Narrow(0, nS, all.Size(0) - nS), head[0], head[1]);
        };
    }

    /// <summary>A new head trained on the support features, and the query features it scores.</summary>
    private (Tensor[] Head, Tensor Query) FitHead(Episode task)
    {
        // Support and query go through the frozen body in one batch (batch norm uses its statistics; see README).
        Tensor support, query;
        using (Torch.NoGrad())
        {
            var nS = task.SupportX.Size(0);
            var all = model.Embed(Torch.Cat([task.SupportX, task.QueryX]), model.Parameters);
            (support, query) = (all.Narrow(0, 0, nS), all.Narrow(0, nS, all.Size(0) - nS));
        }
        var ways = (int)task.SupportY.Max().Item() + 1;
        var features = support.Size(1);
        // A fresh head, PyTorch's default linear initialization, from a fixed generator: evaluation repeats.
        using var g = new Generator(0);
        var bound = 1.0 / Math.Sqrt(features);
        Tensor Init(long[] shape) => (Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g) * (2 * bound) - bound).To(support.Device).RequiresGrad_();
        Tensor[] head = [Init([ways, features]), Init([ways])];
        // The paper's fine-tuning: SGD with momentum 0.9 and weight decay 0.001 (or Adam).
        using Optimizer opt = adam ? new Adam(head, lr) : new Sgd(head, lr, momentum: 0.9, weightDecay: 0.001);
        for (var s = 0; s < steps; s++)
        {
            using var scope = Torch.NewScope();
            var loss = objective.Loss(Head(support, head[0], head[1]), task.SupportY);
            opt.Step(Torch.Grad([loss], head, allowUnused: true));
        }
        return (head, query);
    }

    public void Dispose() => model.Dispose();
}
