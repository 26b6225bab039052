using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Models;

namespace MetaRun.Tests.Algorithms;

/// <summary>The algorithm registry is what the config checks, the model's head and the trainer read.</summary>
public class AlgorithmRegistryTests
{
    private static RunConfig Parse(string algorithm) => ConfigLoader.Parse($"data:\n  dataset: omniglot\nalgorithm:\n{algorithm}", "t.yaml");

    [Fact]
    public void AKeyTheAlgorithmIgnoresIsAConfigErrorNamingKeyAndLine()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("  name: anil\n  lslr: true\n"));
        Assert.Contains("t.yaml:5", e.Message);
        Assert.Contains("'algorithm.lslr' is not used by anil", e.Message);
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("algorithm: {name: protonet}\ndata: {dataset: omniglot}\n", "t.yaml", ["algorithm.test_inner_steps=3"]));
        Assert.Contains("--set algorithm.test_inner_steps=3", e.Message);
    }

    [Fact]
    public void AlfaRefusesToTestWithMoreStepsThanItLearnedRatesFor()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("  name: alfa\n  inner_steps: 2\n  test_inner_steps: 3\n"));
        Assert.Contains("t.yaml:6", e.Message);
        Assert.Contains("'algorithm.test_inner_steps' is 3, but alfa", e.Message);
        Assert.Equal(2, Parse("  name: alfa\n  inner_steps: 2\n").Algorithm.EffectiveTestInnerSteps);
    }

    [Fact]
    public void AnIgnoredKeyLeftAtItsDefaultIsAccepted()
    {
        // A run's own config.yaml lists every key with its value; feeding it back must work.
        Assert.Equal("protonet", Parse("  name: protonet\n  inner_lr: 0.4\n  lslr: false\n").Algorithm.Name);
    }

    [Fact]
    public void ACheckpointsEmbeddedConfigMayHoldKeysItsAlgorithmIgnores()
    {
        var config = ConfigLoader.ParseResolved("data: {dataset: omniglot}\nalgorithm: {name: protonet, test_inner_steps: 3}\n", "ckpt");
        Assert.Equal(3, config.Algorithm.TestInnerSteps);
    }

    [Fact]
    public void UnknownAlgorithmListsTheRegisteredOnes()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("  name: mamla\n"));
        Assert.Contains("t.yaml:4", e.Message);
        foreach (var name in AlgorithmRegistry.Names) Assert.Contains(name, e.Message);
    }

    [Theory]
    [InlineData("maml", false, typeof(Maml))]
    [InlineData("maml", true, typeof(MamlPlusPlus))]
    [InlineData("fomaml", true, typeof(MamlPlusPlus))]
    [InlineData("maml++", false, typeof(MamlPlusPlus))]
    [InlineData("anil", false, typeof(Anil))]
    [InlineData("metasgd", false, typeof(MetaSgd))]
    [InlineData("reptile", false, typeof(Reptile))]
    [InlineData("protonet", false, typeof(ProtoNet))]
    public void EachEntryBuildsItsLearner(string name, bool lslr, Type expected)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(1);
        using var learner = AlgorithmRegistry.Create(new AlgorithmConfig { Name = name, Lslr = lslr }, new Mlp(3, [4], 2, g, Device.Cpu), new Objective(false));
        Assert.IsType(expected, learner);
    }

    [Fact]
    public void EveryEntryNamesItsPaperAndOnlyKnownKeys()
    {
        var keys = typeof(AlgorithmConfig).GetProperties().Where(p => p.CanWrite)
            .Select(p => string.Concat(p.Name.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "_" : "") + char.ToLowerInvariant(c) : c.ToString()))).ToHashSet();
        Assert.Equal(AlgorithmRegistry.All.Count, AlgorithmRegistry.Names.Distinct().Count());
        foreach (var a in AlgorithmRegistry.All)
        {
            Assert.Matches(@"\d{4}", a.Paper);
            Assert.All(a.Keys.Concat(AlgorithmRegistry.OuterKeys), k => Assert.Contains(k, keys));
        }
    }

    [Fact]
    public void ConfigAllowsMoreTrainingWaysThanTestWaysOnlyWithoutAHead()
    {
        const string yaml = "data:\n  dataset: omniglot\n  train: {ways: 20}\n  test: {ways: 5}\nalgorithm:\n  name: {0}\n";
        Assert.Equal(20, ConfigLoader.Parse(yaml.Replace("{0}", "protonet"), "t.yaml").Data.Train.Ways);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml.Replace("{0}", "anil"), "t.yaml"));
        Assert.Contains("data.test.ways", e.Message);
    }

    [Fact]
    public void EachAlgorithmReadsTheKeysItsLearnersDeclare()
    {
        // The lists the registry held as strings before the keys named their readers.
        string[] inner = ["inner_lr", "inner_steps", "test_inner_steps"], mamlPlusPlus = ["multi_step_loss", "multi_step_loss_iterations", "lslr", "per_step_bn", "first_order_iterations"];
        // The learners that differentiate through their inner loop may checkpoint it.
        string[] unrolled = [.. inner, "checkpoint_inner_steps"];
        var expected = new Dictionary<string, string[]>
        {
            ["maml"] = [.. unrolled, .. mamlPlusPlus], ["pretrained"] = inner, ["fomaml"] = [.. unrolled, .. mamlPlusPlus], ["maml++"] = [.. unrolled, .. mamlPlusPlus],
            ["reptile"] = [.. inner, "inner_optimizer", "inner_batch_size"], ["metasgd"] = unrolled, ["anil"] = unrolled, ["alfa"] = unrolled,
            ["adml"] = [.. unrolled, "epsilon"], ["alpha-maml"] = [.. unrolled, "inner_hyper_lr", "outer_hyper_lr"],
            ["protonet"] = [], ["matchingnet"] = ["fce"], ["relationnet"] = [],
            ["baseline"] = ["inner_lr", "test_inner_steps", "inner_optimizer", "batch_size"], ["baseline++"] = ["inner_lr", "test_inner_steps", "inner_optimizer", "batch_size"],
            ["mldg"] = [.. inner, "domains", "meta_test_weight"],
            ["maml-rl"] = [.. inner, "trajectories", "trpo_max_kl"], ["fomaml-rl"] = [.. inner, "trajectories", "trpo_max_kl"],
            ["snail"] = [], ["mann"] = [], ["cnp"] = [],
            ["finetune"] = ["inner_lr", "test_inner_steps", "inner_optimizer", "batch_size", "finetune"],
            ["abml"] = [.. inner, "samples", "test_samples", "kl_weight"], ["bmaml"] = [.. inner, "particles", "chaser_steps"],
            ["imaml"] = [.. inner, "imaml_lambda", "cg_steps", "cg_damping"],
            ["l2l"] = ["inner_steps", "test_inner_steps", "l2l_unroll", "l2l_output_scale"],
            ["meta-lstm"] = ["inner_steps", "test_inner_steps", "outer_grad_clip"],
        };
        Assert.Equal(expected.Keys.Order(), AlgorithmRegistry.Names.Order());
        foreach (var a in AlgorithmRegistry.All)
        {
            Assert.Equal(expected[a.Name].Order(), a.Keys.Order());
            Assert.Equal(expected[a.Name].Contains("test_inner_steps"), a.TakesTestSteps);
        }
        Assert.Equal(new[] { "name", "outer_optimizer", "outer_lr", "outer_lr_schedule", "meta_batch_size", "iterations" }, AlgorithmRegistry.OuterKeys);
    }

    [Fact]
    public void EveryAlgorithmKeyNamesTheLearnersThatReadIt()
    {
        foreach (var p in typeof(AlgorithmConfig).GetProperties().Where(p => p.CanWrite))
        {
            var readBy = p.GetCustomAttributes(typeof(ReadByAttribute), false).Cast<ReadByAttribute>().SingleOrDefault();
            Assert.True(readBy is { Learners.Count: > 0 }, $"AlgorithmConfig.{p.Name} has no [ReadBy]");
            Assert.All(readBy!.Learners, t => Assert.True(typeof(IMetaLearner).IsAssignableFrom(t), $"{p.Name}: {t.Name} is not a learner"));
        }
        Assert.All(AlgorithmRegistry.All, a => Assert.All(a.Learners, t => Assert.True(typeof(IMetaLearner).IsAssignableFrom(t))));
    }
}
