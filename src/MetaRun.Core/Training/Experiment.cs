using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;

namespace MetaRun.Training;

/// <summary>
/// Everything a config names, built once: the device and thread settings, the task family, the
/// model and the meta-learner. Training, evaluation and benchmarks all start here.
/// </summary>
public sealed class Experiment : IDisposable
{
    private Experiment(RunConfig config, Device device, int workers, ITaskFamily family, IModel model, IMetaLearner learner, Objective objective)
    {
        (Config, Device, Workers, Family, Model, Learner, Objective) = (config, device, workers, family, model, learner, objective);
    }

    /// <summary>Tasks of a meta-batch run on this many threads at once.</summary>
    public int Workers { get; }

    public RunConfig Config { get; }
    public Device Device { get; }
    public ITaskFamily Family { get; }
    public IModel Model { get; }
    public IMetaLearner Learner { get; }
    public Objective Objective { get; }

    public EpisodeShape TrainShape => Shape(Config.Data.Train);
    public EpisodeShape TestShape => Shape(Config.Data.Test);

    private EpisodeShape Shape(EpisodeConfig e) => Family.IsRegression ? new EpisodeShape(1, e.Shots, e.Queries) : new EpisodeShape(e.Ways, e.Shots, e.Queries);

    /// <summary>
    /// Training meta-batch <paramref name="index"/>: episodes from the task family, or the
    /// learner's own batches where it trains on something else (the baseline's plain mini-batches).
    /// </summary>
    public MetaBatch TrainingBatch(long index)
    {
        if (Learner is ITrainingBatchSource own) return own.TrainingBatch(index);
        var size = Config.Algorithm.MetaBatchSize;
        return Family.Sample(Split.Train, index * size, size, TrainShape);
    }

    /// <summary>One meta-batch's summed gradients and mean metrics (call inside a dispose scope).</summary>
    public MetaStep Step(MetaBatch batch) => MetaBatchRunner.Step(Learner, batch, Device, Workers);

    /// <summary>Adapts to and scores episodes 0..count−1 of a split with the test episode shape.</summary>
    public List<TaskScore> Evaluate(Split split, int count) =>
        MetaBatchRunner.Evaluate(Learner, Family, split, count, TestShape, Config.Algorithm.MetaBatchSize, Device, Workers);

    /// <param name="dataOptions">How the data is opened; its Log hears about cache builds and rebuilds.</param>
    public static Experiment Create(RunConfig config, string? dataRootOverride, DataOptions? dataOptions = null)
    {
        var device = ResolveDevice(config.Device);
        Torch.ManualSeed((ulong)config.Seed);
        var family = TaskFamilies.Open(config.Data, dataRootOverride, config.Seed, dataOptions ?? DataOptions.Default);
        try
        {
            TaskFamilies.CheckEpisodes(config, family);
            var objective = new Objective(family.IsRegression);
            var model = ModelFactory.Create(config, family.InputShape, Outputs(config, family), device, (ulong)config.Seed);
            var learner = AlgorithmFactory.Create(config.Algorithm, model, objective, family);
            var workers = config.Workers > 0 ? config.Workers : DefaultWorkers(device, learner);
            Torch.Threads = config.Threads > 0 ? config.Threads : Math.Max(1, Environment.ProcessorCount / workers);
            return new Experiment(config, device, workers, family, model, learner, objective);
        }
        catch
        {
            family.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Small tasks keep one core busy poorly: on CPU, a meta-batch's tasks side by side on
    /// single-threaded workers beat one task at a time on all cores (docs/performance.md). A
    /// learner that trains on one ordinary batch per step has nothing to spread, so its one
    /// worker gets all the cores.
    /// </summary>
    private static int DefaultWorkers(Device device, IMetaLearner learner) =>
        device.Type != DeviceType.Cpu || learner is ITrainingBatchSource ? 1 : Environment.ProcessorCount;

    /// <summary>
    /// The head's width: one unit per training way, per training class for the baseline (an
    /// ordinary classifier over all of them); protonet never uses its head, so it gets one unit.
    /// </summary>
    private static int Outputs(RunConfig config, ITaskFamily family) =>
        family.IsRegression ? 1
        : config.Algorithm.Name == "protonet" ? 1
        : config.Algorithm.Name is "baseline" or "baseline++" ? family.ClassCount(Split.Train)
        : config.Data.Train.Ways;

    public static Device ResolveDevice(string name) => name switch
    {
        "cpu" => Device.Cpu,
        "cuda" => Torch.CudaAvailable ? Device.Cuda() : throw new ConfigException("device: cuda was requested but this libtorch has no CUDA support or sees no GPU (build against a CUDA libtorch, see README, or set device: cpu)"),
        _ => Torch.CudaAvailable ? Device.Cuda() : Device.Cpu,
    };

    public void Dispose()
    {
        Learner.Dispose();
        Family.Dispose();
    }
}
