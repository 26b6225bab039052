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
    : FastWeightLearner(model, objective, innerSteps, testInnerSteps)
{
    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Anil From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, firstOrder: false);

    private readonly int[] headIndex = model.IndicesOf(ParameterRole.HeadWeight, ParameterRole.HeadBias);

    protected override bool SecondOrder => !firstOrder;

    /// <summary>Body weights as they are, head weights after <paramref name="steps"/> SGD steps.</summary>
    public override IReadOnlyList<Tensor> Adapt(Tensor x, Tensor y, int steps, bool createGraph)
    {
        var fast = Model.WeightsFor(x).ToArray();
        // The features do not change in the inner loop: compute them once.
        var features = Model.Embed(x, fast);
        for (var s = 0; s < steps; s++)
        {
            var loss = Objective.Loss(Model.Classify(features, fast), y);
            var grads = Torch.Grad([loss], headIndex.Select(i => fast[i]).ToArray(), createGraph: createGraph, retainGraph: true);
            for (var k = 0; k < headIndex.Length; k++) fast[headIndex[k]] = fast[headIndex[k]] - innerLr * grads[k]!;
        }
        return fast;
    }
}
