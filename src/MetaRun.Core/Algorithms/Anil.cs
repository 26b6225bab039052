using LibTorch;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>
/// ANIL, Almost No Inner Loop (Raghu, Raghu, Bengio and Vinyals 2020): MAML whose inner loop
/// adapts only the head, since the paper finds MAML's body barely changes in the inner loop
/// anyway ("feature reuse"):
///   head' ← head − α ∇head L_support(f_(body, head))
///   (body, head) ← (body, head) − β ∇ mean_i L_query(f_(body, head'_i))
/// The body is learned in the outer loop only, through the second-order path of the head.
/// </summary>
public sealed class Anil(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, bool firstOrder)
    : UnrolledLearner(model, objective, innerSteps, testInnerSteps)
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Anil From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, firstOrder: false) { CheckpointInnerSteps = c.Config.CheckpointInnerSteps };

    private readonly int[] headIndex = model.IndicesOf(ParameterRole.HeadWeight, ParameterRole.HeadBias);

    protected override bool SecondOrder => !firstOrder;

    /// <summary>The features do not change in the inner loop: they are computed once.</summary>
    protected override InnerData Prepare(Tensor x, Tensor y, IReadOnlyList<Tensor> initial) => new(x, y, Model.Embed(x, initial));

    /// <summary>Body weights as they are, head weights after one SGD step.</summary>
    protected override IReadOnlyList<Tensor> Step(InnerData support, int step, IReadOnlyList<Tensor> fast, bool createGraph)
    {
        var loss = Objective.Loss(Model.Classify(support.Features!, fast), support.Y);
        var grads = Torch.Grad([loss], headIndex.Select(i => fast[i]).ToArray(), createGraph: createGraph, retainGraph: true);
        var next = fast.ToArray();
        for (var k = 0; k < headIndex.Length; k++) next[headIndex[k]] = fast[headIndex[k]] - innerLr * grads[k]!;
        return next;
    }
}
