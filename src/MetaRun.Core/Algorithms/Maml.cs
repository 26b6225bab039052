using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Model-Agnostic Meta-Learning (Finn, Abbeel and Levine 2017, Algorithm 2). For each task:
///   θ'  ← θ − α ∇θ L_support(f_θ)        (inner SGD steps, differentiable)
///   L_i ← L_query(f_θ')
/// and the outer step descends ∇θ mean_i L_i. First-order MAML treats the inner gradients as
/// constants, dropping the second-order term.
/// </summary>
public sealed class Maml(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, bool firstOrder) : IMetaLearner
{
    public IReadOnlyList<Tensor> OuterParameters => model.Parameters;
    public IReadOnlyList<string> OuterParameterNames => model.ParameterNames;

    /// <summary>Fast weights after <paramref name="steps"/> SGD steps on the support loss.</summary>
    public IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph)
    {
        IReadOnlyList<Tensor> fast = model.Parameters;
        for (var s = 0; s < steps; s++)
        {
            var loss = objective.Loss(model.Forward(x, fast), y);
            var grads = Torch.Grad([loss], fast, createGraph: createGraph);
            fast = fast.Select((w, i) => w - innerLr * grads[i]!).ToArray();
        }
        return fast;
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
