using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// ANIL, Almost No Inner Loop (Raghu, Raghu, Bengio and Vinyals 2020): MAML whose inner loop
/// adapts only the head (the weights from model.HeadStart on), since the paper finds MAML's
/// body barely changes in the inner loop anyway ("feature reuse"):
///   head' ← head − α ∇head L_support(f_(body, head))
///   (body, head) ← (body, head) − β ∇ mean_i L_query(f_(body, head'_i))
/// The body is learned in the outer loop only, through the second-order path of the head.
/// </summary>
public sealed class Anil(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, bool firstOrder) : IMetaLearner
{
    public IReadOnlyList<Tensor> OuterParameters => model.Parameters;
    public IReadOnlyList<string> OuterParameterNames => model.ParameterNames;

    /// <summary>Body weights as they are, head weights after <paramref name="steps"/> SGD steps.</summary>
    public IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph)
    {
        var h = model.HeadStart;
        var body = model.Parameters.Take(h).ToArray();
        IReadOnlyList<Tensor> head = model.Parameters.Skip(h).ToArray();
        // The features do not change in the inner loop: compute them once.
        var features = model.Embed(x, body);
        for (var s = 0; s < steps; s++)
        {
            var loss = objective.Loss(F.Linear(features, head[0], head[1]), y);
            var grads = Torch.Grad([loss], head, createGraph: createGraph, retainGraph: true);
            head = head.Select((w, i) => w - innerLr * grads[i]!).ToArray();
        }
        return [.. body, .. head];
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        IReadOnlyList<Tensor> fast;
        using (PhaseClock.Time("inner loop")) fast = Adapt(task.SupportX, task.SupportY, innerSteps, createGraph: !firstOrder);
        return FastWeights.OuterGradient(model, objective, task, fast, model.Parameters, weight);
    }

    public TaskScore Evaluate(Episode task)
    {
        var fast = Adapt(task.SupportX, task.SupportY, testInnerSteps, createGraph: false);
        return FastWeights.Score(model, objective, task, fast);
    }

    public void Dispose() => model.Dispose();
}
