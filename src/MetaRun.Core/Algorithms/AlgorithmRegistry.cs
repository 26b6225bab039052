using System.Reflection;
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

/// <summary>What an algorithm's <c>From</c> gets: the config, a freshly built model, the task family, the run's seed (for weights of its own) and the training episodes' shape (for a learner that draws its own episodes).</summary>
public sealed record AlgorithmContext(AlgorithmConfig Config, IModel Model, Objective Objective, ITaskFamily? Family, ulong Seed = 0, EpisodeShape? TrainShape = null);

/// <summary>
/// Everything the rest of MetaRun needs to know about one algorithm: the config checks, the
/// model's output width, the trainer's data and the tests all read this, so adding an algorithm
/// is its own file plus one <see cref="AlgorithmRegistry"/> entry.
/// </summary>
/// <param name="Learners">The learner types <paramref name="Create"/> builds; the algorithm.* keys it reads are the ones whose <see cref="ReadByAttribute"/> names one of them.</param>
/// <param name="Batched">Whether a whole meta-batch can run as one batched computation (execution: batched): true for the fast-weight learners.</param>
/// <param name="ZeroTestStepsAdaptNothing">Whether test_inner_steps 0 means no adaptation at test time (MLDG) rather than inner_steps.</param>
/// <param name="Environments">Whether it learns from environments (<see cref="Data.IEnvironmentFamily"/>: meta-reinforcement learning) rather than labelled episodes.</param>
/// <param name="Check">A combination of algorithm.* values the method cannot work with: the key to name and why, or null when all is well.</param>
public sealed record AlgorithmInfo(string Name, string Paper, HeadKind Head, TrainsOn Trains, bool SupportsRegression,
    IReadOnlyList<Type> Learners, Func<AlgorithmContext, IMetaLearner> Create, bool Batched = false, bool ZeroTestStepsAdaptNothing = false,
    Func<AlgorithmConfig, (string Key, string Problem)?>? Check = null, bool Environments = false)
{
    /// <summary>The algorithm.* keys it reads beyond the outer loop's (<see cref="AlgorithmRegistry.OuterKeys"/>); any other key set away from its default is a config error.</summary>
    public IReadOnlyList<string> Keys { get; } = [.. AlgorithmRegistry.KeysReadBy(Learners).Except(AlgorithmRegistry.OuterKeys)];

    /// <summary>Whether it reads the algorithm.* property named <paramref name="property"/> (pass it with nameof).</summary>
    public bool Reads(string property) => AlgorithmRegistry.ReadBy(typeof(AlgorithmConfig).GetProperty(property)!, Learners);

    /// <summary>Whether its evaluation adapts with a number of steps (test_inner_steps) that `adapt --steps` may set.</summary>
    public bool TakesTestSteps => Reads(nameof(AlgorithmConfig.TestInnerSteps));

    /// <summary>The inner steps evaluation takes under this config (what eval.json reports).</summary>
    public int TestInnerSteps(AlgorithmConfig a) => ZeroTestStepsAdaptNothing ? a.TestInnerSteps : a.EffectiveTestInnerSteps;

    /// <summary>Whether evaluation episodes may have other ways than training ones (nothing trained is tied to the ways).</summary>
    public bool AnyTestWays => Head != HeadKind.PerWay;
}

public static class AlgorithmRegistry
{
    /// <summary>Keys of the outer loop, which every algorithm has: those read by every <see cref="IMetaLearner"/>.</summary>
    public static readonly string[] OuterKeys = [.. KeysReadBy([typeof(IMetaLearner)])];

    public static readonly IReadOnlyList<AlgorithmInfo> All =
    [
        // maml and fomaml with a MAML++ switch on become MAML++ (the configs of earlier releases
        // say so); with all off they stay plain MAML, bit-identical to before the switches existed.
        new("maml", "Finn, Abbeel and Levine 2017", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Maml), typeof(MamlPlusPlus)],
            c => MamlPlusPlus.AnySwitch(c.Config) ? MamlPlusPlus.From(c, firstOrder: false) : Maml.From(c, firstOrder: false), Batched: true),
        new("fomaml", "Finn, Abbeel and Levine 2017 (first order)", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Maml), typeof(MamlPlusPlus)],
            c => MamlPlusPlus.AnySwitch(c.Config) ? MamlPlusPlus.From(c, firstOrder: true) : Maml.From(c, firstOrder: true), Batched: true),
        new("pretrained", "Finn, Abbeel and Levine 2017 (pretrained baseline)", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Pretrained)], Pretrained.From),
        new("maml++", "Antoniou, Edwards and Storkey 2019", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(MamlPlusPlus)],
            c => MamlPlusPlus.From(c, firstOrder: false), Batched: true),
        new("reptile", "Nichol, Achiam and Schulman 2018", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Reptile)], Reptile.From),
        new("metasgd", "Li, Zhou, Chen and Li 2017", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(MetaSgd)], MetaSgd.From, Batched: true),
        new("anil", "Raghu, Raghu, Bengio and Vinyals 2020", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Anil)], Anil.From, Batched: true),
        new("alfa", "Baik, Choi, Choi, Kim and Lee 2020", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Alfa)], Alfa.From,
            // Its rates and decays are learned per step: steps it never trained at would run on untrained ones.
            Check: a => a.EffectiveTestInnerSteps > a.InnerSteps
                ? ("algorithm.test_inner_steps", $"'algorithm.test_inner_steps' is {a.TestInnerSteps}, but alfa learns its rate and decay for each of its {a.InnerSteps} training step(s) only; test with at most inner_steps steps (the paper uses the same number)")
                : null),
        new("adml", "Yin, Tang, Xu and Wang 2018", HeadKind.PerWay, TrainsOn.Episodes, false, [typeof(Adml)], Adml.From),
        new("alpha-maml", "Behl, Baydin and Torr 2019", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(AlphaMaml)], AlphaMaml.From,
            Check: a => a.OuterOptimizer != OptimizerKind.Sgd ? ("algorithm.outer_optimizer", $"'algorithm.outer_optimizer' is {a.OuterOptimizer.Yaml()}, but alpha-maml tunes the rate of plain SGD by hypergradient descent; set it to sgd")
                : a.OuterLrSchedule != LrSchedule.Constant ? ("algorithm.outer_lr_schedule", $"'algorithm.outer_lr_schedule' is {a.OuterLrSchedule.Yaml()}, but alpha-maml sets the outer rate itself at every step; leave it constant")
                : null),
        new("protonet", "Snell, Swersky and Zemel 2017", HeadKind.None, TrainsOn.Episodes, false, [typeof(ProtoNet)], ProtoNet.From),
        new("matchingnet", "Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra 2016", HeadKind.None, TrainsOn.Episodes, false, [typeof(MatchingNet)], MatchingNet.From),
        new("relationnet", "Sung, Yang, Zhang, Xiang, Torr and Hospedales 2018", HeadKind.None, TrainsOn.Episodes, false, [typeof(RelationNet)], RelationNet.From),
        new("baseline", "Chen, Liu, Kira, Wang and Huang 2019", HeadKind.PerTrainingClass, TrainsOn.OwnBatches, false, [typeof(Baseline)],
            c => Baseline.From(c, cosine: false)),
        new("baseline++", "Chen, Liu, Kira, Wang and Huang 2019", HeadKind.PerTrainingClass, TrainsOn.OwnBatches, false, [typeof(Baseline)],
            c => Baseline.From(c, cosine: true)),
        new("finetune", "transfer learning (Chen, Liu, Kira, Wang and Huang 2019; Tian, Wang, Krishnan, Tenenbaum and Isola 2020)", HeadKind.PerTrainingClass, TrainsOn.OwnBatches, false, [typeof(Finetune)],
            Finetune.From),
        new("mldg", "Li, Yang, Song and Hospedales 2018", HeadKind.None, TrainsOn.DomainEpisodes, false, [typeof(Mldg)],
            Mldg.From, ZeroTestStepsAdaptNothing: true),
        new("maml-rl", "Finn, Abbeel and Levine 2017 (reinforcement learning)", HeadKind.None, TrainsOn.Episodes, true, [typeof(MamlRl)],
            c => MamlRl.From(c, firstOrder: false), Environments: true),
        new("fomaml-rl", "Finn, Abbeel and Levine 2017 (reinforcement learning, first order)", HeadKind.None, TrainsOn.Episodes, true, [typeof(MamlRl)],
            c => MamlRl.From(c, firstOrder: true), Environments: true),
        // Model-based: the support set is read as a sequence, no gradient step at test time; one logit per training way.
        new("snail", "Mishra, Rohaninejad, Chen and Abbeel 2018", HeadKind.PerWay, TrainsOn.Episodes, false, [typeof(Snail)], Snail.From),
        new("cnp", "Garnelo, Rosenbaum, Maddison, Ramalho, Saxton, Shanahan, Teh, Rezende and Eslami 2018", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Cnp)], Cnp.From),
        new("mann", "Santoro, Bartunov, Botvinick, Wierstra and Lillicrap 2016", HeadKind.PerWay, TrainsOn.Episodes, false, [typeof(Mann)], Mann.From),
        new("abml", "Ravi and Beatson 2019", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Abml)], Abml.From),
        new("bmaml", "Yoon, Kim, Dia, Kim, Bengio and Ahn 2018", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Bmaml)], Bmaml.From),
        new("imaml", "Rajeswaran, Finn, Kakade and Levine 2019", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(Imaml)], Imaml.From, Batched: true),
        new("l2l", "Andrychowicz, Denil, Gómez Colmenarejo, Hoffman, Pfau, Schaul, Shillingford and de Freitas 2016", HeadKind.PerWay, TrainsOn.Episodes, true, [typeof(LearnedOptimizer)], LearnedOptimizer.From,
            Check: a => a.InnerSteps < 1 ? ("algorithm.inner_steps", "'algorithm.inner_steps' is 0, but l2l meta-trains its optimizer on the steps it takes; give at least 1 (the paper: 100)") : null),
        new("meta-lstm", "Ravi and Larochelle 2017", HeadKind.PerWay, TrainsOn.Episodes, false, [typeof(MetaLstm)], MetaLstm.From,
            // c_T is the learner: with no update the meta-learner would learn nothing but c_0, and meta-test batch norm would have no averages.
            Check: a => a.InnerSteps < 1 ? ("algorithm.inner_steps", "'algorithm.inner_steps' is 0, but meta-lstm's learner is trained by its updates; set at least 1 (the paper: 12 for 1-shot, 8 for 5-shot)") : null),
    ];

    /// <summary>Whether any of <paramref name="learners"/> reads the algorithm.* property (its <see cref="ReadByAttribute"/>).</summary>
    internal static bool ReadBy(PropertyInfo property, IReadOnlyList<Type> learners) =>
        property.GetCustomAttribute<ReadByAttribute>() is { } r && learners.Any(r.IsReadBy);

    /// <summary>The snake_case algorithm.* keys that any of <paramref name="learners"/> reads.</summary>
    internal static IEnumerable<string> KeysReadBy(IReadOnlyList<Type> learners) =>
        typeof(AlgorithmConfig).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && ReadBy(p, learners)).Select(p => ConfigLoader.KeyOf(p.Name));

    public static IEnumerable<string> Names => All.Select(a => a.Name);

    public static AlgorithmInfo Get(string name) =>
        All.FirstOrDefault(a => a.Name == name) ?? throw new ConfigException($"algorithm.name: unknown algorithm '{name}' (known: {string.Join(", ", Names)})");

    public static IMetaLearner Create(AlgorithmConfig config, IModel model, Objective objective, ITaskFamily? family = null, ulong seed = 0) =>
        Get(config.Name).Create(new AlgorithmContext(config, model, objective, family, seed));

    /// <summary>The model's output width: one unit per training way, per training class (an ordinary classifier), or 1 where no head is used.</summary>
    public static int Outputs(AlgorithmInfo info, RunConfig config, ITaskFamily family) =>
        family is IEnvironmentFamily env ? env.ActionSize : family.IsRegression ? 1 : info.Head switch
        {
            HeadKind.PerTrainingClass => family.ClassCount(Split.Train),
            HeadKind.None => 1,
            _ => config.Data.Train.Ways,
        };
}
