using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;

namespace MetaRun.Algorithms;

public static class AlgorithmFactory
{
    public static IMetaLearner Create(AlgorithmConfig a, IModel model, Objective objective, ITaskFamily? family = null) => a.Name switch
    {
        "maml" or "fomaml" when UsesMamlPlusPlus(a) => new MamlPlusPlus(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, firstOrder: a.Name == "fomaml",
            a.MultiStepLoss, a.MultiStepLossIterations, a.Lslr, a.PerStepBn, a.FirstOrderIterations),
        "maml" => new Maml(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, firstOrder: false),
        "fomaml" => new Maml(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, firstOrder: true),
        "reptile" => new Reptile(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, adam: a.InnerOptimizer == "adam", a.InnerBatchSize),
        "metasgd" => new MetaSgd(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps),
        "anil" => new Anil(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, firstOrder: false),
        "protonet" => new ProtoNet(model, objective),
        "baseline" or "baseline++" => new Baseline(model, objective, ClassBatches(family, a), a.BatchSize, a.InnerLr, a.EffectiveTestInnerSteps,
            adam: a.InnerOptimizer == "adam", cosine: a.Name == "baseline++"),
        _ => throw new ConfigException($"algorithm.name: unknown algorithm '{a.Name}'"),
    };

    /// <summary>Any MAML++ switch on; with all off, maml stays the plain (and bit-identical) Maml.</summary>
    public static bool UsesMamlPlusPlus(AlgorithmConfig a) => a.MultiStepLoss || a.Lslr || a.PerStepBn || a.FirstOrderIterations > 0;

    private static IClassBatchSource ClassBatches(ITaskFamily? family, AlgorithmConfig a) =>
        family as IClassBatchSource ?? throw new ConfigException($"algorithm.name: {a.Name} pretrains on batches over all training classes, which the {family?.Name ?? "(no)"} task family cannot give; use an image data set (omniglot, miniimagenet)");
}
