using MetaRun.Algorithms;

namespace MetaRun.Config;

// The typed schema of a run's YAML file. Property names map to snake_case keys
// (InnerLr ↔ inner_lr); every key, its default and its meaning is in the README.

public sealed class RunConfig
{
    public string Name { get; set; } = "run";
    public long Seed { get; set; } = 1;
    public DeviceKind Device { get; set; } = DeviceKind.Auto;
    /// <summary>Worker threads that run a meta-batch's tasks side by side; 0 picks from the cores (all of them on CPU, 1 on CUDA).</summary>
    [Range(0, 1024)] public int Workers { get; set; }
    /// <summary>libtorch intra-op threads; 0 picks from the cores (cores ÷ workers).</summary>
    [Range(0, 1024)] public int Threads { get; set; }
    /// <summary>A meta-batch's tasks one after another on the workers (per_task) or all at once as one batched computation (batched); auto picks per device.</summary>
    public Execution Execution { get; set; } = Execution.Auto;
    public DataConfig Data { get; set; } = new();
    public ModelConfig Model { get; set; } = new();
    public AlgorithmConfig Algorithm { get; set; } = new();
    public EvalConfig Eval { get; set; } = new();
    public OutputConfig Output { get; set; } = new();
    public CheckpointConfig Checkpoint { get; set; } = new();
    public DistributedConfig Distributed { get; set; } = new();

    /// <summary>
    /// Where each key was set ("FILE:LINE" or "--set …"), so checks made after loading (against
    /// the opened data set) can name the line too; keys left at their default are absent.
    /// </summary>
    [YamlDotNet.Serialization.YamlIgnore] public IReadOnlyDictionary<string, string> KeyLocations { get; set; } = new Dictionary<string, string>();

    /// <summary>The config's file (or "(resolved)"), named when a key has no location of its own.</summary>
    [YamlDotNet.Serialization.YamlIgnore] public string Source { get; set; } = "(config)";

    /// <summary>Where <paramref name="key"/> was set, else the config's file.</summary>
    public string Where(string key) => KeyLocations.TryGetValue(key, out var w) ? w : Source;
}

public sealed class DataConfig
{
    public Dataset Dataset { get; set; } = Dataset.Sinusoid;

    /// <summary>The regression task families (no classes: one "way" of K points, MSE).</summary>
    [YamlDotNet.Serialization.YamlIgnore] public bool IsRegression => Dataset.IsRegression();
    /// <summary>Folder holding omniglot/ and miniimagenet/; null uses --data-root, METARUN_DATA_ROOT, then the default. For the folder data set: the folder of class subfolders itself (required); for features: the features file, or the folder of train/val/test files (required).</summary>
    public string? Root { get; set; }
    /// <summary>Folder data set: image channels fed to the model, 1 (gray) or 3 (RGB); 0 is 3. Omniglot is always 1 and miniImageNet 3.</summary>
    [Range(0, 3)] public int Channels { get; set; }
    /// <summary>Folder data set without train/ val/ test/ folders or class lists: the fractions of classes in train, val and test, split with data.split_seed.</summary>
    public List<double> SplitRatio { get; set; } = [];
    /// <summary>Folder data set: leave out (with a warning naming them) classes with fewer images than an episode takes, instead of stopping.</summary>
    public bool SkipSmallClasses { get; set; }
    /// <summary>Omniglot class split: vinyals (1200 train characters, rotations as classes) or lake (background/evaluation alphabets).</summary>
    public OmniglotSplit Split { get; set; } = OmniglotSplit.Vinyals;
    /// <summary>Seed of the class split (independent of the run seed, so runs share a split).</summary>
    public long SplitSeed { get; set; } = 0;
    /// <summary>Side of the square images fed to the model; 0 uses the data set's usual size (Omniglot 28, miniImageNet 84).</summary>
    [Range(0, 1024)] public int ImageSize { get; set; }
    public EpisodeConfig Train { get; set; } = new();
    public EpisodeConfig Test { get; set; } = new();
    /// <summary>navigation2d: goals in [0, 1]² and reward −squared distance (paper), or goals in [−0.5, 0.5]² and reward −distance (official_code).</summary>
    public NavigationVariant Navigation { get; set; } = NavigationVariant.Paper;
    /// <summary>navigation2d: the policy also observes the goal (the oracle baseline).</summary>
    public bool ObserveGoal { get; set; }
}

public sealed class EpisodeConfig
{
    [Range(1, 10000)] public int Ways { get; set; } = 5;
    [Range(1, 10000)] public int Shots { get; set; } = 1;
    [Range(1, 10000)] public int Queries { get; set; } = 15;
    /// <summary>Omniglot: every episode's classes come from one alphabet (Lake et al.'s within-alphabet protocol).</summary>
    public bool WithinAlphabet { get; set; }
}

public sealed class ModelConfig
{
    /// <summary>auto picks conv4 for image data and mlp for regression.</summary>
    public ModelName Name { get; set; } = ModelName.Auto;
    /// <summary>conv4 filters per layer (0: 64 Omniglot, 32 miniImageNet); resnet12's first block width w, the others 2.5w, 5w, 10w (0: 64).</summary>
    [Range(0, 4096)] public int Filters { get; set; }
    /// <summary>conv4 downsampling: stride-2 convolutions (Omniglot in Finn et al.) or 2×2 max-pooling (miniImageNet); auto follows the data set.</summary>
    public Downsample Downsample { get; set; } = Downsample.Auto;
    /// <summary>Hidden layer widths of the MLP.</summary>
    public List<int> Hidden { get; set; } = [40, 40];
    /// <summary>A network as a list of layers (docs/models.md), in place of model.name: each entry a type name or a mapping with 'type'; the last is the head.</summary>
    public List<object> Layers { get; set; } = [];
    /// <summary>A safetensors state dict (PyTorch names) loaded into the body before training; the head always starts fresh.</summary>
    public string? Init { get; set; }
    /// <summary>Layers whose weights stay fixed: names or name prefixes (layer1 freezes layer1.0.conv1 …), or body for every layer before the head.</summary>
    public List<string> Freeze { get; set; } = [];
    /// <summary>Per-channel input normalization as the network's first layer: imagenet for a torchvision body pretrained on ImageNet.</summary>
    public InputNormalization Normalize { get; set; } = InputNormalization.None;
}

public sealed class AlgorithmConfig
{
    /// <summary>The meta-learner: a name in <see cref="MetaRun.Algorithms.AlgorithmRegistry"/> (checked there); see the README's Algorithms section.</summary>
    [ReadBy(typeof(IMetaLearner))] public string Name { get; set; } = "maml";
    /// <summary>Inner step size α (Meta-SGD and LSLR: the initial value of the learned rates; baseline: the fine-tuning rate).</summary>
    [ReadBy(typeof(FastWeightLearner), typeof(Baseline), typeof(Mldg), typeof(MamlRl), typeof(Finetune), typeof(Abml), typeof(Bmaml)), Range(0.0, 1e6)] public double InnerLr { get; set; } = 0.4;
    [ReadBy(typeof(FastWeightLearner), typeof(Mldg), typeof(MamlRl), typeof(Abml), typeof(Bmaml), typeof(LearnedOptimizer), typeof(MetaLstm)), Range(0, 1000)] public int InnerSteps { get; set; } = 1;
    /// <summary>Inner steps at validation and test time; 0 uses inner_steps (baseline: steps training the new head).</summary>
    [ReadBy(typeof(FastWeightLearner), typeof(Baseline), typeof(Mldg), typeof(MamlRl), typeof(Finetune), typeof(Abml), typeof(Bmaml), typeof(LearnedOptimizer), typeof(MetaLstm)), Range(0, 100000)] public int TestInnerSteps { get; set; }
    /// <summary>Reptile's inner optimizer and baseline's head fine-tuning optimizer.</summary>
    [ReadBy(typeof(Reptile), typeof(Baseline), typeof(Finetune))] public OptimizerKind InnerOptimizer { get; set; } = OptimizerKind.Sgd;
    /// <summary>Reptile: examples per inner step, drawn from the pooled support and query sets; 0 = all of them.</summary>
    [ReadBy(typeof(Reptile)), Range(0, 100000)] public int InnerBatchSize { get; set; }
    [ReadBy(typeof(IMetaLearner))] public OptimizerKind OuterOptimizer { get; set; } = OptimizerKind.Adam;
    [ReadBy(typeof(IMetaLearner)), Range(0.0, 1e6)] public double OuterLr { get; set; } = 0.001;
    /// <summary>Outer learning rate over the iterations: constant, linear to 0 (Reptile) or cosine to 0 (MAML++).</summary>
    [ReadBy(typeof(IMetaLearner))] public LrSchedule OuterLrSchedule { get; set; } = LrSchedule.Constant;
    [ReadBy(typeof(IMetaLearner)), Range(1, 100000)] public int MetaBatchSize { get; set; } = 32;
    [ReadBy(typeof(IMetaLearner)), Range(1, 100000000)] public int Iterations { get; set; } = 1000;
    /// <summary>MAML++: query loss after every inner step, weights annealed toward the last step.</summary>
    [ReadBy(typeof(MamlPlusPlus))] public bool MultiStepLoss { get; set; }
    /// <summary>MAML++: iterations over which the multi-step loss weights anneal to the last step; afterwards only the last step counts.</summary>
    [ReadBy(typeof(MamlPlusPlus)), Range(1, 100000000)] public int MultiStepLossIterations { get; set; } = 5000;
    /// <summary>MAML++: learned inner learning rate per layer and per step.</summary>
    [ReadBy(typeof(MamlPlusPlus))] public bool Lslr { get; set; }
    /// <summary>MAML++: separate batch-norm weights and biases for every inner step.</summary>
    [ReadBy(typeof(MamlPlusPlus))] public bool PerStepBn { get; set; }
    /// <summary>MAML++ derivative-order annealing: first order for the first N iterations, second order after.</summary>
    [ReadBy(typeof(MamlPlusPlus)), Range(0, 100000000)] public int FirstOrderIterations { get; set; }
    /// <summary>Baseline: examples per pretraining mini-batch.</summary>
    [ReadBy(typeof(Baseline), typeof(Finetune)), Range(1, 100000)] public int BatchSize { get; set; } = 16;
    /// <summary>ADML: the L∞ size of its FGSM examples in pixel units (a fraction of the 0–255 range).</summary>
    [ReadBy(typeof(Adml)), Range(0.0, 1.0)] public double Epsilon { get; set; } = 0.1;
    /// <summary>Alpha MAML: the hypergradient step μ_α of the inner rate.</summary>
    [ReadBy(typeof(AlphaMaml)), Range(0.0, 1e6)] public double InnerHyperLr { get; set; } = 1e-4;
    /// <summary>Alpha MAML: the hypergradient step μ_β of the outer rate.</summary>
    [ReadBy(typeof(AlphaMaml)), Range(0.0, 1e6)] public double OuterHyperLr { get; set; } = 1e-4;
    /// <summary>Matching Networks: full context embeddings (the paper's bidirectional support LSTM and attention LSTM for queries).</summary>
    [ReadBy(typeof(MatchingNet))] public bool Fce { get; set; }
    /// <summary>Meta-RL: trajectories sampled per task for each inner step and for the post-adaptation (query) rollouts.</summary>
    [ReadBy(typeof(MamlRl)), Range(1, 100000)] public int Trajectories { get; set; } = 20;
    /// <summary>Meta-RL: the outer step is TRPO with this KL bound (Finn et al.: 0.01); 0 uses outer_optimizer on the surrogate's gradient instead.</summary>
    [ReadBy(typeof(MamlRl)), Range(0.0, 10.0)] public double TrpoMaxKl { get; set; } = 0.01;
    /// <summary>MLDG: training domains per task, the last held out as meta-test and the others meta-train.</summary>
    [ReadBy(typeof(Mldg)), Range(2, 10000)] public int Domains { get; set; } = 4;
    /// <summary>MLDG's β: weight of the held-out domain's loss after the meta-train step.</summary>
    [ReadBy(typeof(Mldg)), Range(0.0, 1e6)] public double MetaTestWeight { get; set; } = 1;

    /// <summary>finetune: what a test episode's support set trains, a new head on the fixed body (head) or the whole network (all).</summary>
    [ReadBy(typeof(Finetune))] public FinetuneScope Finetune { get; set; } = FinetuneScope.Head;
    /// <summary>ABML: weight samples from the adapted posterior for each task's query likelihood in training.</summary>
    [ReadBy(typeof(Abml)), Range(1, 1000)] public int Samples { get; set; } = 2;
    /// <summary>ABML: weight samples whose predictions are averaged at evaluation.</summary>
    [ReadBy(typeof(Abml)), Range(1, 1000)] public int TestSamples { get; set; } = 10;
    /// <summary>ABML's β: weight of KL(posterior ‖ prior) per support example in the inner and outer objectives.</summary>
    [ReadBy(typeof(Abml)), Range(0.0, 1e6)] public double KlWeight { get; set; } = 0.1;
    /// <summary>BMAML: particles (full copies of the network's weights) moved by SVGD.</summary>
    [ReadBy(typeof(Bmaml)), Range(2, 100)] public int Particles { get; set; } = 5;
    /// <summary>BMAML: the leader's extra SVGD steps on support and query beyond the chaser's inner_steps.</summary>
    [ReadBy(typeof(Bmaml)), Range(1, 1000)] public int ChaserSteps { get; set; } = 1;
    /// <summary>iMAML: λ, the strength of the inner problem's pull (λ/2)‖φ − θ‖² toward the initialization θ.</summary>
    [ReadBy(typeof(Imaml)), Range(1e-6, 1e6)] public double ImamlLambda { get; set; } = 2.0;
    /// <summary>iMAML: conjugate-gradient iterations solving (I + H/λ)v = ∇L_query for the implicit meta-gradient.</summary>
    [ReadBy(typeof(Imaml)), Range(1, 1000)] public int CgSteps { get; set; } = 5;
    /// <summary>iMAML: d in the damped system (I + H/(λ + d))v = ∇L_query that CG solves; 0 is the paper's system.</summary>
    [ReadBy(typeof(Imaml)), Range(0.0, 1e6)] public double CgDamping { get; set; }
    /// <summary>l2l: optimizer steps per truncated unroll (the paper: 20); inner_steps is the whole optimisation, differentiated unroll by unroll.</summary>
    [ReadBy(typeof(LearnedOptimizer)), Range(1, 1000)] public int L2lUnroll { get; set; } = 20;
    /// <summary>l2l: the factor on the LSTM's linear output, the step θ_{t+1} − θ_t.</summary>
    [ReadBy(typeof(LearnedOptimizer)), Range(1e-6, 1e3)] public double L2lOutputScale { get; set; } = 0.1;
    /// <summary>Meta-LSTM: the outer gradient is scaled down to this global L2 norm where it is longer (Ravi and Larochelle: 0.25); 0 never clips.</summary>
    [ReadBy(typeof(MetaLstm)), Range(0.0, 1e6)] public double OuterGradClip { get; set; } = 0.25;
    /// <summary>Learners that differentiate through their inner loop: recompute each inner step in the backward pass instead of keeping its activations (memory flat in inner_steps, one more inner loop of compute).</summary>
    [ReadBy(typeof(UnrolledLearner))] public bool CheckpointInnerSteps { get; set; }

    [YamlDotNet.Serialization.YamlIgnore] public int EffectiveTestInnerSteps => TestInnerSteps > 0 ? TestInnerSteps : InnerSteps;
}

public sealed class EvalConfig
{
    /// <summary>Validate every this many iterations; 0 never.</summary>
    [Range(0, 100000000)] public int Interval { get; set; } = 500;
    [Range(1, 1000000)] public int Episodes { get; set; } = 100;
}

public sealed class OutputConfig
{
    /// <summary>Runs are written under this folder as DIR/NAME-TIMESTAMP unless --out names the run folder.</summary>
    public string Dir { get; set; } = "runs";

    /// <summary>Write TensorBoard event files (events.out.tfevents.*) into the run folder as it trains and is evaluated.</summary>
    public bool Tensorboard { get; set; } = true;
}

public sealed class CheckpointConfig
{
    /// <summary>Write checkpoints/last every this many iterations (and at the end).</summary>
    [Range(1, 100000000)] public int Interval { get; set; } = 500;
}

public sealed class DistributedConfig
{
    /// <summary>
    /// Seconds any rank waits for the others (rendezvous, each collective) before it gives up and
    /// names the rank that did not come; only used when training runs in several processes.
    /// </summary>
    [Range(1, 86400)] public int Timeout { get; set; } = 300;
}

[AttributeUsage(AttributeTargets.Property)]
public sealed class RangeAttribute(double min, double max) : Attribute
{
    public double Min { get; } = min;
    public double Max { get; } = max;
}

/// <summary>
/// The learners that read an algorithm.* key: a learner reads it when it is (or derives from) one
/// of these types, so IMetaLearner marks the outer loop's keys, which every learner has. The
/// registry derives each algorithm's keys from this; a key set away from its default for an
/// algorithm that does not read it is a config error.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ReadByAttribute(params Type[] learners) : Attribute
{
    public IReadOnlyList<Type> Learners { get; } = learners;

    public bool IsReadBy(Type learner) => Learners.Any(t => t.IsAssignableFrom(learner));
}
