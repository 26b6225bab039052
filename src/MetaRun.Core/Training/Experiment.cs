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
/// <param name="TasksPerRun">Batched: at most this many tasks computed at once (a run), 0 for a worker's whole share.</param>
public sealed record ExecutionPlan(Device Device, int Workers, int Threads, bool Batched, int TasksPerRun = 0);

/// <summary>
/// Everything a config names, built once: the task family, the model and the meta-learner, and
/// where they run. Training, evaluation and benchmarks all start here, through <see cref="Launch"/>;
/// <see cref="Create"/> builds one in this process alone and changes no process-wide setting.
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

    /// <summary>
    /// The one way a command starts: sets the process-wide settings (<see cref="ApplyProcessSettings"/>),
    /// joins the other ranks when this process was launched as one of several (torchrun or Slurm
    /// variables, or `--nproc`'s supervisor; every rank must hold the same config and
    /// <paramref name="purpose"/>: the command and what it names), and builds the experiment.
    /// If building fails, the other ranks are told, so they stop with this rank's error instead
    /// of waiting for it until the timeout. The experiment owns the ranks' connection.
    /// </summary>
    /// <param name="dataOptions">The data layer's cache and messages (default: the standard cache, silent).</param>
    public static Experiment Launch(RunConfig config, string? dataRootOverride, string purpose, DataOptions? dataOptions = null)
    {
        var launch = Distributed.Launch.FromEnvironment();
        ApplyProcessSettings(config, launch);
        var parallel = DataParallel.JoinIfLaunched(launch, config, purpose);
        try
        {
            return Create(config, dataRootOverride, parallel, dataOptions);
        }
        catch (Exception e)
        {
            parallel?.ReportFailure(e);
            parallel?.Dispose();
            throw;
        }
    }

    /// <summary>An experiment in this process alone, with no process-wide settings changed (tests, `bench`'s second mode, `adapt`).</summary>
    /// <param name="dataOptions">The data layer's cache and messages (default: the standard cache, silent).</param>
    public static Experiment Create(RunConfig config, string? dataRootOverride, DataOptions? dataOptions = null) =>
        Create(config, dataRootOverride, null, dataOptions);

    private static Experiment Create(RunConfig config, string? dataRootOverride, DataParallel? parallel, DataOptions? dataOptions)
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
            TaskFamilies.CheckEpisodes(config, family, dataOptions);
            var objective = new Objective(family.IsRegression, family is IEnvironmentFamily ? HeadlineMetric.NegativeReturn : null);
            var model = ModelFactory.Create(config, family.InputShape, AlgorithmRegistry.Outputs(algorithm, config, family), plan.Device, (ulong)config.Seed, (dataOptions ?? DataOptions.Default).Log);
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
    /// poorly: on CPU, single-threaded workers each on their own tasks beat one computation on all
    /// cores (docs/performance.md); an algorithm that trains on one ordinary batch per step is one
    /// computation, so one worker gets all the cores. execution: auto batches where the algorithm
    /// can: always on a GPU, where one task at a time leaves it mostly idle; on CPU for small image
    /// tasks (<see cref="CpuBatchedExamples"/>), where runs of <see cref="CpuTasksPerRun"/> tasks on
    /// the workers measured faster than one task at a time, while larger episodes (5-shot,
    /// 20-way) ran faster per task (docs/performance.md). Processes of a distributed run on one
    /// machine share its cores evenly, and each takes the GPU of its local rank.
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
            _ => algorithm.Batched && (device.Type != DeviceType.Cpu || SmallImageTasks(config.Data)),
        };
        var one = device.Type != DeviceType.Cpu || algorithm.Trains == TrainsOn.OwnBatches;
        var workers = config.Workers > 0 ? config.Workers : one ? 1 : cores;
        var threads = config.Threads > 0 ? config.Threads : Math.Max(1, cores / workers);
        return new ExecutionPlan(device, workers, threads, batched, batched && device.Type == DeviceType.Cpu ? TasksPerRun(config.Algorithm.MetaBatchSize) : 0);
    }

    /// <summary>
    /// Batched on CPU, the tasks computed at once: <see cref="CpuTasksPerRun"/>, or half the
    /// meta-batch when that is fewer, so that two workers have a run each (MAML++'s meta-batch of 8:
    /// 0.075 s per iteration in runs of 4 against 0.13 s in one run of 8). A function of the config
    /// rather than a share per worker, so that the summation order, and with it every bit of a run,
    /// is the same on any core count.
    /// </summary>
    public static int TasksPerRun(int metaBatchSize) => Math.Clamp((metaBatchSize + 1) / 2, 1, CpuTasksPerRun);

    /// <summary>The most tasks of a batched run on CPU: runs of 8 were 7% faster than runs of 4 on the bar configuration.</summary>
    public const int CpuTasksPerRun = 8;

    /// <summary>On CPU, auto batches image tasks of at most this many training examples (support and query): 5-way 1-shot with one query per class is 10.</summary>
    public const int CpuBatchedExamples = 16;

    private static bool SmallImageTasks(DataConfig data) =>
        data.Dataset.HasImages() && data.Train.Ways * (data.Train.Shots + data.Train.Queries) <= CpuBatchedExamples;

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

    /// <summary>
    /// Tells the other ranks (if any) that this one failed, so they stop with its error rather
    /// than wait for it in the next collective; a no-op in a single process.
    /// </summary>
    public void ReportFailure(Exception e) => Parallel?.ReportFailure(e);

    public void Dispose()
    {
        Learner.Dispose();
        Family.Dispose();
        Parallel?.Dispose();
    }
}
