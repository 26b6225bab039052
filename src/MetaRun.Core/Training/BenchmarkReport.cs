using System.Globalization;
using System.Text.Json;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Training;

/// <summary>What `metarun bench` prints, line by line, and writes as JSON.</summary>
public sealed record BenchmarkReport(IReadOnlyList<string> Lines, Dictionary<string, object> Json)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Writes the JSON file; returns its path.</summary>
    public string Write(string path)
    {
        File.WriteAllText(path, JsonSerializer.Serialize(Json, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return path;
    }

    /// <summary>
    /// Times full meta-iterations of a config as the trainer runs them (launched like every run:
    /// as one rank of several when the environment says so), then, in a single process, the other
    /// execution mode beside it. Null on ranks other than 0: every rank ran the same synchronised
    /// iterations and one reports.
    /// </summary>
    public static BenchmarkReport? OfTraining(string configPath, RunConfig config, string? dataRoot, int iterations, int warmup)
    {
        if (iterations < 1 || warmup < 0) throw new ConfigException("--iterations must be at least 1 and --warmup at least 0");
        using var experiment = Experiment.Launch(config, dataRoot, $"bench {iterations} {warmup}", new DataOptions { Splits = TaskFamilies.Needs(config, Split.Train) });
        var parallel = experiment.Parallel;
        BenchmarkResult r;
        try
        {
            r = Benchmark.Run(experiment, iterations, warmup);
            parallel?.Barrier("the end of the benchmark");
        }
        catch (Exception e)
        {
            experiment.ReportFailure(e);
            throw;
        }
        if (parallel is { Rank: > 0 }) return null;
        var lines = new List<string>();
        var processes = parallel == null ? "" : $"{parallel.WorldSize} processes ({parallel.Backend}) × ";
        var a = config.Algorithm;
        var shape = experiment.TrainShape;
        var work = experiment.Algorithm.Trains == TrainsOn.OwnBatches
            ? $"batches of {a.BatchSize}"
            : $"{shape.Ways}-way {shape.Shots}-shot {shape.Queries}-query, meta-batch {a.MetaBatchSize}" +
              (experiment.Algorithm.Keys.Contains("inner_steps") ? $", {a.InnerSteps} inner step(s)" : "");
        var mode = experiment.Plan.Batched ? "batched" : "per_task";
        lines.Add($"bench: {a.Name} on {config.Data.Dataset.Yaml()} {work}; " +
                  $"{experiment.Device}, execution {mode}, {processes}{experiment.Workers} workers × {Torch.Threads} threads, {Environment.ProcessorCount} cores");
        lines.Add($"  seconds per meta-iteration: median {r.MedianSeconds.ToString("0.000", Inv)} (p10 {r.P10Seconds.ToString("0.000", Inv)}, p90 {r.P90Seconds.ToString("0.000", Inv)}) over {iterations} after {warmup} warm-up");
        lines.Add($"  episodes per second: {r.EpisodesPerSecond.ToString("0.0", Inv)}");
        lines.Add($"  peak memory of a meta-iteration: {r.PeakGrowthMb.ToString("0", Inv)} MB above the {r.RssBeforeFirstMb.ToString("0", Inv)} MB RSS before the first " +
                  $"(peak RSS {r.PeakRssMb.ToString("0", Inv)} MB {(r.PeakCoversIterationsOnly ? "during the iterations" : "of the whole process: its high-water mark could not be reset")}; CPU memory only)");
        lines.Add($"  RSS after warm-up {r.RssAfterWarmupMb.ToString("0", Inv)} MB, at end {r.RssAtEndMb.ToString("0", Inv)} MB; live tensors {r.LiveTensorsAfterWarmup} → {r.LiveTensorsAtEnd}");
        lines.Add($"  RSS (MB, managed heap in brackets) after iteration: {string.Join(", ", r.RssByIteration.Select(p => $"{p.Iteration}: {p.RssMb.ToString("0", Inv)} ({p.ManagedMb.ToString("0", Inv)})"))}");
        var flops = experiment.Device.Type == DeviceType.Cpu ? FlopCount.Of(experiment, r.TasksPerIteration) : null;
        // The peak on as many threads as the timed iterations kept busy (workers × threads each).
        var busy = Math.Max(experiment.Workers * Torch.Threads, Torch.Threads);
        var peak = double.NaN;
        if (flops != null)
        {
            var before = Torch.Threads;
            Torch.Threads = Math.Min(busy, Environment.ProcessorCount);
            try { peak = FlopCount.PeakGflops(); }
            finally { Torch.Threads = before; }
        }
        if (flops != null)
        {
            string G(double f) => (f / 1e9).ToString("0.000", Inv);
            var achieved = flops.Total / 1e9 / r.MedianSeconds;
            lines.Add($"  work: {G(flops.Total)} GFLOP per meta-iteration (forward {G(flops.Forward)}, backward {G(flops.Backward)}, second order {G(flops.SecondOrder)}; " +
                      "convolutions and linear layers, counted from the network: docs/performance.md)");
            lines.Add($"  achieved {achieved.ToString("0.0", Inv)} GFLOP/s = {(100 * achieved / peak).ToString("0", Inv)}% of this machine's peak " +
                      $"({peak.ToString("0.0", Inv)} GFLOP/s: a float32 2048×2048 matrix product on {Math.Min(busy, Environment.ProcessorCount)} threads)");
            foreach (var (layer, f, b, so) in flops.Layers)
                lines.Add($"    {layer,-22} forward {G(f)}, backward {G(b)}, second order {G(so)} GFLOP");
        }
        foreach (var (k, v) in r.BreakdownSeconds.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            lines.Add($"  {k,-34} {v.ToString("0.0000", Inv)} s/iteration");
        var communication = r.BreakdownSeconds.GetValueOrDefault("all-reduce (wall)");
        var gradientBytes = experiment.Learner.OuterParameters.Sum(p => p.NumElements * (p.DType == ScalarType.Float64 ? 8 : 4));
        if (parallel != null)
            lines.Add($"  communication: the all-reduce takes {communication.ToString("0.0000", Inv)} s of a {r.MedianSeconds.ToString("0.000", Inv)} s iteration " +
                      $"({(100 * communication / r.MedianSeconds).ToString("0.0", Inv)}%), {gradientBytes.ToString("N0", Inv)} bytes of gradients");
        var threads = Torch.Threads;
        // The other mode would be a single process's run here: a distributed bench times its own layout only.
        var other = parallel == null ? Benchmark.RunOtherMode(experiment, dataRoot, iterations, warmup) : null;
        var modes = new Dictionary<string, object> { [mode] = ModeJson(r, experiment.Plan) };
        if (other != null)
        {
            modes[other.Mode] = ModeJson(other.Result, other.Plan);
            lines.Add($"  side by side: {mode} {r.MedianSeconds.ToString("0.000", Inv)} s, {other.Mode} {other.Result.MedianSeconds.ToString("0.000", Inv)} s per meta-iteration " +
                      $"({other.Mode}: {other.Plan.Workers} workers × {other.Plan.Threads} threads, p10 {other.Result.P10Seconds.ToString("0.000", Inv)}, p90 {other.Result.P90Seconds.ToString("0.000", Inv)})");
        }
        var json = new Dictionary<string, object>
        {
            ["config"] = Path.GetFullPath(configPath),
            ["algorithm"] = a.Name,
            ["dataset"] = config.Data.Dataset.Yaml(),
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
            ["peak_rss_covers_iterations_only"] = r.PeakCoversIterationsOnly,
            ["rss_before_first_iteration_mb"] = Math.Round(r.RssBeforeFirstMb, 1),
            ["peak_growth_mb"] = Math.Round(r.PeakGrowthMb, 1),
            ["rss_after_warmup_mb"] = Math.Round(r.RssAfterWarmupMb, 1),
            ["rss_end_mb"] = Math.Round(r.RssAtEndMb, 1),
            ["live_tensors_after_warmup"] = r.LiveTensorsAfterWarmup,
            ["live_tensors_end"] = r.LiveTensorsAtEnd,
            ["rss_mb_after_iteration"] = r.RssByIteration.ToDictionary(p => p.Iteration.ToString(Inv), p => Math.Round(p.RssMb, 1)),
            ["managed_mb_after_iteration"] = r.RssByIteration.ToDictionary(p => p.Iteration.ToString(Inv), p => Math.Round(p.ManagedMb, 1)),
            ["breakdown_seconds_per_iteration"] = r.BreakdownSeconds.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value, 5)),
            ["libtorch"] = Torch.LibTorchVersion,
            ["allreduce_seconds_per_iteration"] = Math.Round(communication, 5),
            ["allreduce_share"] = Math.Round(communication / r.MedianSeconds, 4),
            ["gradient_bytes"] = gradientBytes,
        };
        if (flops != null)
        {
            json["gflop_per_iteration"] = Math.Round(flops.Total / 1e9, 4);
            json["gflop_forward_backward_second_order"] = new[] { Math.Round(flops.Forward / 1e9, 4), Math.Round(flops.Backward / 1e9, 4), Math.Round(flops.SecondOrder / 1e9, 4) };
            json["achieved_gflops"] = Math.Round(flops.Total / 1e9 / r.MedianSeconds, 2);
            json["peak_gflops"] = Math.Round(peak, 2);
        }
        return new BenchmarkReport(lines, json);
    }

    private static Dictionary<string, object> ModeJson(BenchmarkResult r, ExecutionPlan plan) => new()
    {
        ["median_seconds"] = Math.Round(r.MedianSeconds, 4),
        ["p10_seconds"] = Math.Round(r.P10Seconds, 4),
        ["p90_seconds"] = Math.Round(r.P90Seconds, 4),
        ["workers"] = plan.Workers,
        ["torch_threads"] = plan.Threads,
        // No growth figure here: the other mode runs second, in a heap the first one already grew.
        ["peak_rss_mb"] = Math.Round(r.PeakRssMb, 1),
    };

    /// <summary>The data pipeline of a config (<see cref="DataBenchmark"/>).</summary>
    public static BenchmarkReport OfData(string configPath, RunConfig config, string? dataRoot, int episodes)
    {
        var r = DataBenchmark.Run(config, dataRoot, episodes);
        var label = $"{r.Dataset}, {r.Shape.Ways}-way {r.Shape.Shots}-shot {r.Shape.Queries}-query, meta-batches of {r.TasksPerBatch}";
        var lines = new List<string>
        {
            $"data bench: {label}; {Environment.ProcessorCount} cores, {Torch.Threads} torch threads",
            $"  first-time preparation ({r.Images} images, empty cache): {r.PrepareSeconds:F2} s",
        };
        lines.AddRange(r.PrepareNotes.Select(note => $"    {note}"));
        lines.Add($"  cached start:                                   {r.CachedStartSeconds:F3} s");
        lines.Add($"  sampling: {r.Episodes} episodes in {r.SamplingSeconds:F2} s = {r.EpisodesPerSecond:F0} episodes/s");
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
        return new BenchmarkReport(lines, json);
    }
}
