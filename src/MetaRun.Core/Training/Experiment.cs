using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Distributed;
using MetaRun.Models;

namespace MetaRun.Training;

/// <summary>
/// Where and how a config runs: the device, the task workers, the intra-op threads per worker,
/// and whether a meta-batch's tasks run one by one on the workers or all at once (batched).
/// </summary>
public sealed record ExecutionPlan(Device Device, int Workers, int Threads, bool Batched);

/// <summary>
/// Everything a config names, built once: the task family, the model and the meta-learner, and
/// where they run. Training, evaluation and benchmarks all start here. Creating one changes no
/// process-wide setting: <see cref="ApplyProcessSettings"/> is the explicit step for that.
/// </summary>
public sealed class Experiment : IDisposable
{
    private Experiment(RunConfig config, AlgorithmInfo algorithm, ExecutionPlan plan, ITaskFamily family, IModel model, IMetaLearner learner, Objective objective, DataParallel? parallel)
    {
        (Config, Algorithm, Plan, Family, Model, Learner, Objective, Parallel) = (config, algorithm, plan, family, model, learner, objective, parallel);
    }

    /// <summary>This process's rank in a data-parallel run (it owns a share of every meta-batch and validation); null when alone.</summary>
    public DataParallel? Parallel { get; }

    public RunConfig Config { get; }
    public AlgorithmInfo Algorithm { get; }
    public ExecutionPlan Plan { get; }
    public Device Device => Plan.Device;

    /// <summary>Tasks of a meta-batch run on this many threads at once.</summary>
    public int Workers => Plan.Workers;

    public ITaskFamily Family { get; }
    public IModel Model { get; }
    public IMetaLearner Learner { get; }
    public Objective Objective { get; }

    public EpisodeShape TrainShape => Shape(Config.Data.Train);
    public EpisodeShape TestShape => Shape(Config.Data.Test);

    // A regression task has no classes: one "way" of K points.
    private EpisodeShape Shape(EpisodeConfig e) => new(Family.IsRegression ? 1 : e.Ways, e.Shots, e.Queries);

    /// <summary>
    /// Training meta-batch <paramref name="index"/>: episodes from the task family, or the
    /// learner's own batches where it trains on something else (the baseline's plain mini-batches,
    /// MLDG's tasks of several domains).
    /// </summary>
    public MetaBatch TrainingBatch(long index)
    {
        if (Learner is ITrainingBatchSource own) return own.TrainingBatch(index);
        var size = Config.Algorithm.MetaBatchSize;
        // In a data-parallel run this rank samples only its own episodes of the meta-batch.
        var (first, count) = Parallel?.Share(index * size, size) ?? (index * size, size);
        return Family.Sample(Split.Train, first, count, TrainShape);
    }

    /// <summary>Outer step <paramref name="iteration"/> (1-based) on <paramref name="batch"/>; see <see cref="MetaIteration"/>.</summary>
    public MetaStep Iterate(Optimizer optimizer, MetaBatch batch, long iteration, CancellationToken stop = default) =>
        MetaIteration.Run(Learner, Config.Algorithm, optimizer, batch, iteration, Plan, Parallel, stop);

    /// <summary>
    /// Adapts to and scores episodes 0..count−1 of a split with the test episode shape. In a
    /// data-parallel run each rank scores its share and every rank gets all scores, in episode order.
    /// </summary>
    public List<TaskScore> Evaluate(Split split, int count) =>
        [.. ScoreEpisodes(split, count, 1, (task, _) => [Learner.Evaluate(task)]).Select(s => s[0])];

    /// <summary>
    /// Each episode scored twice by the same adapted model: on its clean query set, and on the
    /// query set perturbed by <paramref name="attack"/> against that model. PGD's random start
    /// is seeded by the episode's index, so the figures repeat at any worker or rank count.
    /// </summary>
    public List<(TaskScore Clean, TaskScore Attacked)> EvaluateUnderAttack(Split split, int count, Attack attack)
    {
        var pixels = PixelSpace.Of(Family, "--attack");
        TaskScore[] Score(Episode task, long index)
        {
            var predict = Learner.Predictor(task);
            using var start = new Generator((ulong)Config.Seed ^ (0x61747461636BUL + (ulong)index));
            var attacked = pixels.Perturb(predict, task.QueryX, task.QueryY, Objective, attack, start);
            using var noGrad = Torch.NoGrad();
            return [Objective.Score(predict(task.QueryX), task.QueryY), Objective.Score(predict(attacked), task.QueryY)];
        }
        return [.. ScoreEpisodes(split, count, 2, Score).Select(s => (s[0], s[1]))];
    }

    /// <summary>
    /// <paramref name="width"/> scores per episode for episodes 0..count−1: this rank's share on
    /// the workers, then gathered so that every rank holds all of them, in episode order.
    /// </summary>
    private List<TaskScore[]> ScoreEpisodes(Split split, int count, int width, Func<Episode, long, TaskScore[]> score)
    {
        var (first, mine) = Parallel?.Share(0, count) ?? (0L, count);
        var scores = MetaBatchRunner.ForEachEpisode(Family, split, first, mine, TestShape, Config.Algorithm.MetaBatchSize, Device, Workers, score);
        if (Parallel == null) return scores;
        var all = Parallel.Gather(scores.SelectMany(s => s.SelectMany(t => new[] { t.Loss, t.Accuracy })).ToArray(), $"gathering the {split} scores");
        var per = 2 * width;
        return [.. Enumerable.Range(0, all.Length / per).Select(i => Enumerable.Range(0, width).Select(j => new TaskScore(all[per * i + 2 * j], all[per * i + 2 * j + 1])).ToArray())];
    }

    /// <param name="dataOptions">The data layer's cache and messages (default: the standard cache, silent).</param>
    public static Experiment Create(RunConfig config, string? dataRootOverride, DataParallel? parallel = null, DataOptions? dataOptions = null)
    {
        var algorithm = AlgorithmRegistry.Get(config.Algorithm.Name);
        if (parallel != null && algorithm.Trains == TrainsOn.OwnBatches)
            throw new ConfigException($"algorithm.name: {config.Algorithm.Name} trains on ordinary mini-batches, not episodes; data-parallel training splits episodes, so run it in one process");
        if (parallel != null && algorithm.Trains == TrainsOn.DomainEpisodes)
            throw new ConfigException($"algorithm.name: {config.Algorithm.Name} draws its own domain tasks, which data-parallel training does not share out among ranks; run it in one process");
        var plan = PlanFor(config, parallel?.Launch);
        var family = TaskFamilies.Open(config.Data, dataRootOverride, config.Seed, dataOptions ?? DataOptions.Default);
        try
        {
            TaskFamilies.CheckEpisodes(config, family);
            var objective = new Objective(family.IsRegression);
            var model = ModelFactory.Create(config, family.InputShape, AlgorithmRegistry.Outputs(algorithm, config, family), plan.Device, (ulong)config.Seed);
            var learner = algorithm.Create(new AlgorithmContext(config.Algorithm, model, objective, family, (ulong)config.Seed, TaskFamilies.ShapeOf(config.Data, Split.Train)));
            return new Experiment(config, algorithm, plan, family, model, learner, objective, parallel);
        }
        catch
        {
            family.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The device and thread layout a config asks for (0 = pick). Small tasks keep one core busy
    /// poorly: on CPU, a meta-batch's tasks side by side on single-threaded workers beat one task
    /// at a time on all cores (docs/performance.md). An algorithm that trains on one ordinary
    /// batch per step, or a batched meta-batch, is one computation: one worker gets all the cores.
    /// execution: auto batches on a GPU, where one task at a time leaves it mostly idle, and runs
    /// per task on CPU, where `metarun bench` measured per-task workers faster (docs/performance.md).
    /// Processes of a distributed run on one machine share its cores evenly, and each takes the GPU
    /// of its local rank.
    /// </summary>
    public static ExecutionPlan PlanFor(RunConfig config, Launch? launch = null)
    {
        var device = ResolveDevice(config.Device);
        if (device.Type == DeviceType.Cuda && launch != null) device = Device.Cuda(launch.LocalRank);
        var cores = Math.Max(1, Environment.ProcessorCount / (launch?.LocalWorldSize ?? 1));
        var algorithm = AlgorithmRegistry.Get(config.Algorithm.Name);
        var batched = config.Execution switch
        {
            Execution.Batched => true,
            Execution.PerTask => false,
            _ => algorithm.Batched && device.Type != DeviceType.Cpu,
        };
        var one = device.Type != DeviceType.Cpu || algorithm.Trains == TrainsOn.OwnBatches || batched;
        var workers = config.Workers > 0 ? config.Workers : one ? 1 : cores;
        var threads = config.Threads > 0 ? config.Threads : Math.Max(1, cores / workers);
        return new ExecutionPlan(device, workers, threads, batched);
    }

    /// <summary>
    /// Sets what is process-wide: libtorch's (and OpenBLAS's) intra-op threads from the plan, and
    /// libtorch's global seed. Commands call it once before they build an experiment; tests that
    /// call it share one serial collection.
    /// </summary>
    public static void ApplyProcessSettings(RunConfig config, Launch? launch = null)
    {
        Torch.ManualSeed((ulong)config.Seed);
        Torch.Threads = PlanFor(config, launch).Threads;
    }

    public static Device ResolveDevice(DeviceKind kind) => kind switch
    {
        DeviceKind.Cpu => Device.Cpu,
        DeviceKind.Cuda => Torch.CudaAvailable ? Device.Cuda() : throw new ConfigException($"device: cuda was requested but {Torch.CudaUnavailableReason}"),
        _ => Torch.CudaAvailable ? Device.Cuda() : Device.Cpu,
    };

    public void Dispose()
    {
        Learner.Dispose();
        Family.Dispose();
    }
}
