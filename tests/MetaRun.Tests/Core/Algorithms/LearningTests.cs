using LibTorch;
using MetaRun.Config;
using MetaRun.Data;
using Xunit.Abstractions;

namespace MetaRun.Tests.Algorithms;


/// <summary>
/// Each method learns: on 5-way 1-shot episodes of Gaussian blobs (classes unseen in training),
/// meta-training lifts query accuracy well above chance (20%) and above the untrained network.
/// </summary>
public class LearningTests(ITestOutputHelper output)
{
    public static AlgorithmConfig Config(string name) => name switch
    {
        "reptile" => new AlgorithmConfig
        {
            Name = "reptile", InnerOptimizer = OptimizerKind.Adam, InnerLr = 0.01, InnerSteps = 5, InnerBatchSize = 10, TestInnerSteps = 30,
            OuterOptimizer = OptimizerKind.Sgd, OuterLr = 1.0, OuterLrSchedule = LrSchedule.Linear, MetaBatchSize = 5,
        },
        "metasgd" => new AlgorithmConfig { Name = "metasgd", InnerLr = 0.3, InnerSteps = 1, OuterLr = 0.01, MetaBatchSize = 8 },
        "anil" => new AlgorithmConfig { Name = "anil", InnerLr = 0.5, InnerSteps = 3, OuterLr = 0.003, MetaBatchSize = 8 },
        "alfa" => new AlgorithmConfig { Name = "alfa", InnerLr = 0.3, InnerSteps = 2, OuterLr = 0.003, MetaBatchSize = 8 },
        "protonet" or "matchingnet" or "relationnet" => new AlgorithmConfig { Name = name, OuterLr = 0.003, MetaBatchSize = 8 },
        "maml++" => new AlgorithmConfig
        {
            Name = "maml++", InnerLr = 0.3, InnerSteps = 3, OuterLr = 0.003, OuterLrSchedule = LrSchedule.Cosine, MetaBatchSize = 8,
            MultiStepLoss = true, MultiStepLossIterations = 100, Lslr = true, FirstOrderIterations = 50,
        },
        "baseline" or "baseline++" => new AlgorithmConfig
        {
            Name = name, BatchSize = 32, OuterLr = 0.003, InnerOptimizer = OptimizerKind.Sgd, InnerLr = 0.05, TestInnerSteps = 100, MetaBatchSize = 8,
        },
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [InlineData("reptile", 300)]
    [InlineData("metasgd", 300)]
    [InlineData("anil", 300)]
    [InlineData("alfa", 300)]
    [InlineData("protonet", 300)]
    [InlineData("matchingnet", 300)]
    [InlineData("relationnet", 300)]
    [InlineData("maml++", 300)]
    [InlineData("baseline", 300)]
    [InlineData("baseline++", 300)]
    public void QueryAccuracyRisesWellAboveChance(string name, int iterations)
    {
        using var run = new BlobRun(Config(name), new EpisodeShape(5, 1, 5));
        var before = run.TestAccuracy();
        run.Train(iterations);
        var after = run.TestAccuracy();
        output.WriteLine($"{name}: test accuracy {before:F3} before, {after:F3} after {iterations} iterations");
        Assert.True(after > 0.6, $"{name}: accuracy {after:F3} after training should be well above chance (0.2)");
        Assert.True(after > before + 0.25, $"{name}: accuracy {after:F3} after training should beat {before:F3} before");
    }
}
