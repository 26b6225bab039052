using System.CommandLine;
using System.Text.Json;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Distributed;
using MetaRun.Training;
using System.Globalization;

namespace MetaRun.Cli.Commands;

/// <summary>metarun bench: timings. --data CONFIG measures the data pipeline (<see cref="RunData"/>).</summary>
public static class BenchCommand
{
    public static readonly Option<string?> Data = new("--data") { Description = "Benchmark the data pipeline of this config: first-time preparation, cached start, episodes/s" };
    public static readonly Option<int> Episodes = new("--episodes") { Description = "Episodes to sample for the sampling rate", DefaultValueFactory = _ => 20000 };
    public static readonly Option<string[]> Set = new("--set") { Description = "Override a config key: key.path=value (repeatable)" };

    public static Command Create()
    {
        var config = new Argument<string?>("config") { Description = "Config whose meta-iterations to time", Arity = ArgumentArity.ZeroOrOne };
        var iterations = new Option<int>("--iterations") { Description = "Meta-iterations to time", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "Meta-iterations to run first, untimed", DefaultValueFactory = _ => 3 };
        var output = new Option<string>("--out") { Description = "Where to write the JSON result", DefaultValueFactory = _ => "bench.json" };
        var command = new Command("bench", "Measure seconds per meta-iteration (sampling included), or with --data CONFIG the data pipeline alone")
            { config, Data, Episodes, Set, iterations, warmup, output, Nproc.Option, Nproc.Oversubscribe };
        command.SetAction(parse =>
        {
            var sets = parse.GetValue(Set) ?? [];
            var dataRoot = parse.GetValue(GlobalOptions.DataRoot);
            var data = parse.GetValue(Data);
            if (data != null) return RunData(data, sets, dataRoot, parse.GetValue(Episodes), Console.Out);
            var path = parse.GetValue(config) ?? throw new ConfigException("bench needs a CONFIG (or --data CONFIG for the data pipeline)");
            if (Nproc.Requested(parse) is { } n) return Nproc.Launch(parse, n, ConfigLoader.Load(path, sets));
            return RunTraining(path, sets, dataRoot, parse.GetValue(iterations), parse.GetValue(warmup), parse.GetValue(output)!);
        });
        return command;
    }

    /// <summary>Times full meta-iterations of a config as the trainer runs them; prints and writes the figures.</summary>
    public static int RunTraining(string configPath, IReadOnlyList<string> sets, string? dataRoot, int iterations, int warmup, string jsonPath)
    {
        if (iterations < 1 || warmup < 0) throw new ConfigException("--iterations must be at least 1 and --warmup at least 0");
        var config = ConfigLoader.Load(configPath, sets);
        var launch = Launch.FromEnvironment();
        Experiment.ApplyProcessSettings(config, launch);
        using var parallel = DataParallel.JoinIfLaunched(launch, config, $"bench {iterations} {warmup}");
        using var experiment = Experiment.Create(config, dataRoot, parallel);
        BenchmarkResult r;
        try
        {
            r = Benchmark.Run(experiment, iterations, warmup);
            parallel?.Barrier("the end of the benchmark");
        }
        catch (Exception e)
        {
            parallel?.ReportFailure(e);
            throw;
        }
        // One rank reports: every rank ran the same synchronised iterations.
        if (parallel is { Rank: > 0 }) return ExitCodes.Success;
        var inv = CultureInfo.InvariantCulture;
        var processes = parallel == null ? "" : $"{parallel.WorldSize} processes ({parallel.Backend}) × ";
        var a = config.Algorithm;
        var shape = experiment.TrainShape;
        var work = experiment.Algorithm.Trains == TrainsOn.OwnBatches
            ? $"batches of {a.BatchSize}"
            : $"{shape.Ways}-way {shape.Shots}-shot {shape.Queries}-query, meta-batch {a.MetaBatchSize}, {a.InnerSteps} inner step(s)";
        var mode = experiment.Plan.Batched ? "batched" : "per_task";
        Console.WriteLine($"bench: {a.Name} on {config.Data.Dataset} {work}; " +
                          $"{experiment.Device}, execution {mode}, {processes}{experiment.Workers} workers × {Torch.Threads} threads, {Environment.ProcessorCount} cores");
        Console.WriteLine($"  seconds per meta-iteration: median {r.MedianSeconds.ToString("0.000", inv)} (p10 {r.P10Seconds.ToString("0.000", inv)}, p90 {r.P90Seconds.ToString("0.000", inv)}) over {iterations} after {warmup} warm-up");
        Console.WriteLine($"  episodes per second: {r.EpisodesPerSecond.ToString("0.0", inv)}");
        Console.WriteLine($"  peak RSS {r.PeakRssMb.ToString("0", inv)} MB; RSS after warm-up {r.RssAfterWarmupMb.ToString("0", inv)} MB, at end {r.RssAtEndMb.ToString("0", inv)} MB; live tensors {r.LiveTensorsAfterWarmup} → {r.LiveTensorsAtEnd}");
        Console.WriteLine($"  RSS (MB, managed heap in brackets) after iteration: {string.Join(", ", r.RssByIteration.Select(p => $"{p.Iteration}: {p.RssMb.ToString("0", inv)} ({p.ManagedMb.ToString("0", inv)})"))}");
        foreach (var (k, v) in r.BreakdownSeconds.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            Console.WriteLine($"  {k,-34} {v.ToString("0.0000", inv)} s/iteration");
        var communication = r.BreakdownSeconds.GetValueOrDefault("all-reduce (wall)");
        if (parallel != null)
            Console.WriteLine($"  communication: the all-reduce takes {communication.ToString("0.0000", inv)} s of a {r.MedianSeconds.ToString("0.000", inv)} s iteration " +
                              $"({(100 * communication / r.MedianSeconds).ToString("0.0", inv)}%), {ParameterBytes(experiment).ToString("N0", inv)} bytes of gradients");
        var threads = Torch.Threads;
        // The other mode would be a single process's run here: a distributed bench times its own layout only.
        var other = parallel == null ? Benchmark.RunOtherMode(experiment, dataRoot, iterations, warmup) : null;
        var modes = new Dictionary<string, object> { [mode] = ModeJson(r, experiment.Plan) };
        if (other != null)
        {
            modes[other.Mode] = ModeJson(other.Result, other.Plan);
            Console.WriteLine($"  side by side: {mode} {r.MedianSeconds.ToString("0.000", inv)} s, {other.Mode} {other.Result.MedianSeconds.ToString("0.000", inv)} s per meta-iteration " +
                              $"({other.Mode}: {other.Plan.Workers} workers × {other.Plan.Threads} threads, p10 {other.Result.P10Seconds.ToString("0.000", inv)}, p90 {other.Result.P90Seconds.ToString("0.000", inv)})");
        }
        var json = new Dictionary<string, object>
        {
            ["config"] = Path.GetFullPath(configPath),
            ["algorithm"] = a.Name,
            ["dataset"] = config.Data.Dataset,
            ["ways"] = shape.Ways,
            ["shots"] = shape.Shots,
            ["queries"] = shape.Queries,
            ["meta_batch_size"] = a.MetaBatchSize,
            ["tasks_per_iteration"] = r.TasksPerIteration,
            ["inner_steps"] = a.InnerSteps,
            ["device"] = experiment.Device.ToString(),
            ["processes"] = parallel?.WorldSize ?? 1,
            ["workers"] = experiment.Workers,
            ["torch_threads"] = threads,
            ["execution"] = mode,
            ["modes"] = modes,
            ["cores"] = Environment.ProcessorCount,
            ["iterations"] = iterations,
            ["warmup"] = warmup,
            ["median_seconds"] = Math.Round(r.MedianSeconds, 4),
            ["p10_seconds"] = Math.Round(r.P10Seconds, 4),
            ["p90_seconds"] = Math.Round(r.P90Seconds, 4),
            ["episodes_per_second"] = Math.Round(r.EpisodesPerSecond, 2),
            ["peak_rss_mb"] = Math.Round(r.PeakRssMb, 1),
            ["rss_after_warmup_mb"] = Math.Round(r.RssAfterWarmupMb, 1),
            ["rss_end_mb"] = Math.Round(r.RssAtEndMb, 1),
            ["live_tensors_after_warmup"] = r.LiveTensorsAfterWarmup,
            ["live_tensors_end"] = r.LiveTensorsAtEnd,
            ["rss_mb_after_iteration"] = r.RssByIteration.ToDictionary(p => p.Iteration.ToString(inv), p => Math.Round(p.RssMb, 1)),
            ["managed_mb_after_iteration"] = r.RssByIteration.ToDictionary(p => p.Iteration.ToString(inv), p => Math.Round(p.ManagedMb, 1)),
            ["breakdown_seconds_per_iteration"] = r.BreakdownSeconds.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value, 5)),
            ["libtorch"] = Torch.LibTorchVersion,
            ["allreduce_seconds_per_iteration"] = Math.Round(communication, 5),
            ["allreduce_share"] = Math.Round(communication / r.MedianSeconds, 4),
            ["gradient_bytes"] = ParameterBytes(experiment),
        };
        File.WriteAllText(jsonPath, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Console.WriteLine($"  wrote {jsonPath}");
        return ExitCodes.Success;
    }

    /// <summary>What one all-reduce carries: every outer parameter's gradient.</summary>
    private static long ParameterBytes(Experiment e) => e.Learner.OuterParameters.Sum(p => p.NumElements * (p.DType == ScalarType.Float64 ? 8 : 4));

    private static Dictionary<string, object> ModeJson(BenchmarkResult r, ExecutionPlan plan) => new()
    {
        ["median_seconds"] = Math.Round(r.MedianSeconds, 4),
        ["p10_seconds"] = Math.Round(r.P10Seconds, 4),
        ["p90_seconds"] = Math.Round(r.P90Seconds, 4),
        ["workers"] = plan.Workers,
        ["torch_threads"] = plan.Threads,
        ["peak_rss_mb"] = Math.Round(r.PeakRssMb, 1),
    };

    /// <summary>Times the data pipeline of a config (<see cref="DataBenchmark"/>); prints and writes the figures.</summary>
    public static int RunData(string configPath, IReadOnlyList<string> sets, string? dataRoot, int episodes, TextWriter output, string jsonPath = "bench-data.json")
    {
        var config = ConfigLoader.Load(configPath, sets);
        var r = DataBenchmark.Run(config, dataRoot, episodes);
        var label = $"{r.Dataset}, {r.Shape.Ways}-way {r.Shape.Shots}-shot {r.Shape.Queries}-query, meta-batches of {r.TasksPerBatch}";
        output.WriteLine($"data bench: {label}; {Environment.ProcessorCount} cores, {Torch.Threads} torch threads");
        output.WriteLine($"  first-time preparation ({r.Images} images, empty cache): {r.PrepareSeconds:F2} s");
        foreach (var note in r.PrepareNotes) output.WriteLine($"    {note}");
        output.WriteLine($"  cached start:                                   {r.CachedStartSeconds:F3} s");
        output.WriteLine($"  sampling: {r.Episodes} episodes in {r.SamplingSeconds:F2} s = {r.EpisodesPerSecond:F0} episodes/s");
        var json = new Dictionary<string, object>
        {
            ["config"] = Path.GetFullPath(configPath),
            ["dataset"] = r.Dataset,
            ["images"] = r.Images,
            ["ways"] = r.Shape.Ways,
            ["shots"] = r.Shape.Shots,
            ["queries"] = r.Shape.Queries,
            ["tasks_per_batch"] = r.TasksPerBatch,
            ["prepare_seconds"] = Math.Round(r.PrepareSeconds, 3),
            ["cached_start_seconds"] = Math.Round(r.CachedStartSeconds, 4),
            ["episodes"] = r.Episodes,
            ["episodes_per_second"] = Math.Round(r.EpisodesPerSecond, 1),
            ["cores"] = Environment.ProcessorCount,
            ["torch_threads"] = Torch.Threads,
        };
        File.WriteAllText(jsonPath, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        output.WriteLine($"  wrote {jsonPath}");
        return ExitCodes.Success;
    }
}
