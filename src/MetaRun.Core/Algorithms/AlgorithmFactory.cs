using MetaRun.Config;
using MetaRun.Models;

namespace MetaRun.Algorithms;

public static class AlgorithmFactory
{
    public static IMetaLearner Create(AlgorithmConfig a, IModel model, Objective objective) => a.Name switch
    {
        "maml" => new Maml(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, firstOrder: false),
        "fomaml" => new Maml(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, firstOrder: true),
        _ => throw new ConfigException($"algorithm.name: unknown algorithm '{a.Name}'"),
    };
}
