using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;

namespace MetaRun.Algorithms;

/// <summary>What the model's output layer must be for an algorithm.</summary>
public enum HeadKind
{
    /// <summary>One output per way of the training episodes; evaluation must use the same ways.</summary>
    PerWay,
    /// <summary>One output per training class (an ordinary classifier); evaluation trains a new head, any ways.</summary>
    PerTrainingClass,
    /// <summary>No head is used or saved; any ways at evaluation.</summary>
    None,
}

/// <summary>What the trainer feeds an algorithm: the family's episodes, or batches the learner draws itself.</summary>
/// <remarks>
/// DomainEpisodes: the learner draws its own tasks (<see cref="ITrainingBatchSource"/>), but each
/// is made of episodes shaped by data.train, so data.train is checked and the tasks of a
/// meta-batch run side by side on the workers like episodes (MLDG's domain draws).
/// </remarks>
public enum TrainsOn { Episodes, OwnBatches, DomainEpisodes }

/// <summary>What an algorithm's constructor gets: the config, a freshly built model, the task family, the run's seed (for weights of its own) and the training episodes' shape (for a learner that draws its own episodes).</summary>
public sealed record AlgorithmContext(AlgorithmConfig Config, IModel Model, Objective Objective, ITaskFamily? Family, ulong Seed = 0, EpisodeShape? TrainShape = null);

/// <summary>
/// Everything the rest of MetaRun needs to know about one algorithm: the config checks, the
/// model's output width, the trainer's data and the tests all read this, so adding an algorithm
/// is its own file plus one <see cref="AlgorithmRegistry"/> entry.
/// </summary>
/// <param name="Keys">The algorithm.* keys it reads beyond the outer loop's (name, outer_*, meta_batch_size, iterations); any other key set away from its default is a config error.</param>
/// <param name="Batched">Whether a whole meta-batch can run as one batched computation (execution: batched): true for the fast-weight learners.</param>
/// <param name="ZeroTestStepsAdaptNothing">Whether test_inner_steps 0 means no adaptation at test time (MLDG) rather than inner_steps.</param>
/// <param name="Check">A combination of algorithm.* values the method cannot work with: the key to name and why, or null when all is well.</param>
public sealed record AlgorithmInfo(string Name, string Paper, HeadKind Head, TrainsOn Trains, bool SupportsRegression,
    IReadOnlyList<string> Keys, Func<AlgorithmContext, IMetaLearner> Create, bool Batched = false, bool ZeroTestStepsAdaptNothing = false,
    Func<AlgorithmConfig, (string Key, string Problem)?>? Check = null)
{
    /// <summary>The inner steps evaluation takes under this config (what eval.json reports).</summary>
    public int TestInnerSteps(AlgorithmConfig a) => ZeroTestStepsAdaptNothing ? a.TestInnerSteps : a.EffectiveTestInnerSteps;

    /// <summary>Whether evaluation episodes may have other ways than training ones (nothing trained is tied to the ways).</summary>
    public bool AnyTestWays => Head != HeadKind.PerWay;
}

public static class AlgorithmRegistry
{
    /// <summary>Keys of the outer loop, which every algorithm has.</summary>
    public static readonly string[] OuterKeys = ["name", "outer_optimizer", "outer_lr", "outer_lr_schedule", "meta_batch_size", "iterations"];

    private static readonly string[] Inner = ["inner_lr", "inner_steps", "test_inner_steps"];
    private static readonly string[] MamlPlusPlusSwitches = ["multi_step_loss", "multi_step_loss_iterations", "lslr", "per_step_bn", "first_order_iterations"];

    public static readonly IReadOnlyList<AlgorithmInfo> All =
    [
        // maml and fomaml with a MAML++ switch on become MAML++ (the configs of earlier releases
        // say so); with all off they stay plain MAML, bit-identical to before the switches existed.
        new("maml", "Finn, Abbeel and Levine 2017", HeadKind.PerWay, TrainsOn.Episodes, true, [.. Inner, .. MamlPlusPlusSwitches],
            c => MamlPlusPlus.AnySwitch(c.Config) ? MamlPlusPlus.From(c, firstOrder: false) : Maml(c, firstOrder: false), Batched: true),
        new("fomaml", "Finn, Abbeel and Levine 2017 (first order)", HeadKind.PerWay, TrainsOn.Episodes, true, [.. Inner, .. MamlPlusPlusSwitches],
            c => MamlPlusPlus.AnySwitch(c.Config) ? MamlPlusPlus.From(c, firstOrder: true) : Maml(c, firstOrder: true), Batched: true),
        new("maml++", "Antoniou, Edwards and Storkey 2019", HeadKind.PerWay, TrainsOn.Episodes, true, [.. Inner, .. MamlPlusPlusSwitches],
            c => MamlPlusPlus.From(c, firstOrder: false), Batched: true),
        new("reptile", "Nichol, Achiam and Schulman 2018", HeadKind.PerWay, TrainsOn.Episodes, true, [.. Inner, "inner_optimizer", "inner_batch_size"],
            c => new Reptile(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, adam: c.Config.InnerOptimizer == "adam", c.Config.InnerBatchSize)),
        new("metasgd", "Li, Zhou, Chen and Li 2017", HeadKind.PerWay, TrainsOn.Episodes, true, Inner,
            c => new MetaSgd(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps), Batched: true),
        new("anil", "Raghu, Raghu, Bengio and Vinyals 2020", HeadKind.PerWay, TrainsOn.Episodes, true, Inner,
            c => new Anil(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, firstOrder: false), Batched: true),
        new("alfa", "Baik, Choi, Choi, Kim and Lee 2020", HeadKind.PerWay, TrainsOn.Episodes, true, Inner,
            c => new Alfa(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Seed),
            // Its rates and decays are learned per step: steps it never trained at would run on untrained ones.
            Check: a => a.EffectiveTestInnerSteps > a.InnerSteps
                ? ("algorithm.test_inner_steps", $"'algorithm.test_inner_steps' is {a.TestInnerSteps}, but alfa learns its rate and decay for each of its {a.InnerSteps} training step(s) only; test with at most inner_steps steps (the paper uses the same number)")
                : null),
        new("adml", "Yin, Tang, Xu and Wang 2018", HeadKind.PerWay, TrainsOn.Episodes, false, [.. Inner, "epsilon"],
            c => new Adml(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.Epsilon, PixelSpace.Of(c.Family, "algorithm.name: adml"))),
        new("alpha-maml", "Behl, Baydin and Torr 2019", HeadKind.PerWay, TrainsOn.Episodes, true, [.. Inner, "inner_hyper_lr", "outer_hyper_lr"],
            c => new AlphaMaml(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.OuterLr, c.Config.InnerHyperLr, c.Config.OuterHyperLr),
            Check: a => a.OuterOptimizer != "sgd" ? ("algorithm.outer_optimizer", $"'algorithm.outer_optimizer' is {a.OuterOptimizer}, but alpha-maml tunes the rate of plain SGD by hypergradient descent; set it to sgd")
                : a.OuterLrSchedule != "constant" ? ("algorithm.outer_lr_schedule", $"'algorithm.outer_lr_schedule' is {a.OuterLrSchedule}, but alpha-maml sets the outer rate itself at every step; leave it constant")
                : null),
        new("protonet", "Snell, Swersky and Zemel 2017", HeadKind.None, TrainsOn.Episodes, false, [],
            c => new ProtoNet(c.Model, c.Objective)),
        new("matchingnet", "Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra 2016", HeadKind.None, TrainsOn.Episodes, false, ["fce"],
            c => new MatchingNet(c.Model, c.Objective, c.Config.Fce, c.Seed)),
        new("relationnet", "Sung, Yang, Zhang, Xiang, Torr and Hospedales 2018", HeadKind.None, TrainsOn.Episodes, false, [],
            c => new RelationNet(c.Model, c.Objective, c.Seed)),
        new("baseline", "Chen, Liu, Kira, Wang and Huang 2019", HeadKind.PerTrainingClass, TrainsOn.OwnBatches, false, ["inner_lr", "test_inner_steps", "inner_optimizer", "batch_size"],
            c => Baseline.From(c, cosine: false)),
        new("baseline++", "Chen, Liu, Kira, Wang and Huang 2019", HeadKind.PerTrainingClass, TrainsOn.OwnBatches, false, ["inner_lr", "test_inner_steps", "inner_optimizer", "batch_size"],
            c => Baseline.From(c, cosine: true)),
        new("mldg", "Li, Yang, Song and Hospedales 2018", HeadKind.None, TrainsOn.DomainEpisodes, false, [.. Inner, "domains", "meta_test_weight"],
            Mldg.From, ZeroTestStepsAdaptNothing: true),
    ];

    private static Maml Maml(AlgorithmContext c, bool firstOrder) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, firstOrder);

    public static IEnumerable<string> Names => All.Select(a => a.Name);

    public static AlgorithmInfo Get(string name) =>
        All.FirstOrDefault(a => a.Name == name) ?? throw new ConfigException($"algorithm.name: unknown algorithm '{name}' (known: {string.Join(", ", Names)})");

    public static IMetaLearner Create(AlgorithmConfig config, IModel model, Objective objective, ITaskFamily? family = null, ulong seed = 0) =>
        Get(config.Name).Create(new AlgorithmContext(config, model, objective, family, seed));

    /// <summary>The model's output width: one unit per training way, per training class (an ordinary classifier), or 1 where no head is used.</summary>
    public static int Outputs(AlgorithmInfo info, RunConfig config, ITaskFamily family) =>
        family.IsRegression ? 1 : info.Head switch
        {
            HeadKind.PerTrainingClass => family.ClassCount(Split.Train),
            HeadKind.None => 1,
            _ => config.Data.Train.Ways,
        };
}
