using System.Diagnostics;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Training;

/// <summary>Seconds per meta-iteration and where they go, measured end to end (sampling included).</summary>
public sealed record BenchmarkResult(
    int Iterations,
    int Warmup,
    int TasksPerIteration,
    double MedianSeconds,
    double P10Seconds,
    double P90Seconds,
    double PeakRssMb,
    double RssBeforeFirstMb,
    bool PeakCoversIterationsOnly,
    long LiveTensorsAfterWarmup,
    long LiveTensorsAtEnd,
    IReadOnlyList<(int Iteration, double RssMb, double ManagedMb)> RssByIteration,
    IReadOnlyDictionary<string, double> BreakdownSeconds)
{
    public double EpisodesPerSecond => TasksPerIteration / MedianSeconds;
    public double RssAfterWarmupMb => RssByIteration[0].RssMb;
    public double RssAtEndMb => RssByIteration[^1].RssMb;
    /// <summary>How far the peak RSS rose above the RSS before the first meta-iteration: what the iterations themselves need at their peak.</summary>
    public double PeakGrowthMb => PeakRssMb - RssBeforeFirstMb;
}

/// <summary>
/// Times full meta-iterations of an experiment exactly as the trainer runs them: prefetched
/// sampling, task gradients on the worker threads, summation and the outer optimizer step.
/// </summary>
public static class Benchmark
{
    /// <summary>The other way to run the same meta-iteration, timed beside the configured one.</summary>
    public sealed record ModeTiming(string Mode, ExecutionPlan Plan, BenchmarkResult Result);

    /// <summary>
    /// Times the other execution mode of the experiment's config (batched if it runs per task,
    /// and the reverse) on a fresh experiment with the same seed, when the algorithm can batch;
    /// null otherwise. Sets the process-wide threads for that mode's plan.
    /// </summary>
    public static ModeTiming? RunOtherMode(Experiment e, string? dataRoot, int iterations, int warmup)
    {
        if (!e.Algorithm.Batched) return null;
        var config = ConfigLoader.ParseResolved(ConfigLoader.ToYaml(e.Config), "(bench)");
        config.Execution = e.Plan.Batched ? Execution.PerTask : Execution.Batched;
        // Workers and threads follow the mode unless the config pins them.
        Experiment.ApplyProcessSettings(config);
        using var other = Experiment.Create(config, dataRoot, new DataOptions { Splits = TaskFamilies.Needs(config, Split.Train) });
        return new ModeTiming(config.Execution.Yaml(), other.Plan, Run(other, iterations, warmup));
    }

    public static BenchmarkResult Run(Experiment e, int iterations, int warmup)
    {
        using var optimizer = MetaIteration.CreateOptimizer(e.Config.Algorithm, e.Learner.OuterParameters);
        using var prefetcher = new Prefetcher(e.TrainingBatch, 0);
        var times = new List<double>();
        var tasks = 0;
        var waiting = 0.0;
        // About ten points from the end of warm-up to the end: growth shows as a trend, not just two ends.
        var rssEvery = Math.Max(1, iterations / 10);
        var rssTrace = new List<(int, double, double)>();
        void TraceRss(int done) => rssTrace.Add((done, Memory.RssMb(), Memory.ManagedMb()));
        long liveAfterWarmup = 0;
        // The high-water mark from here on: loading the data and building the model may peak higher than an iteration.
        var peakReset = Memory.ResetPeak();
        var rssBefore = Memory.RssMb();
        for (var it = 0; it < warmup + iterations; it++)
        {
            var measuring = it >= warmup;
            if (it == warmup) liveAfterWarmup = Torch.LiveTensors;
            if (measuring && (it - warmup) % rssEvery == 0) TraceRss(it);
            PhaseClock.Enabled = measuring;
            var clock = Stopwatch.StartNew();
            using (var scope = Torch.NewScope())
            {
                using var batch = prefetcher.Next();
                // A data-parallel rank holds a share; the iteration covers the whole meta-batch.
                tasks = e.Parallel == null ? batch.Tasks : e.Config.Algorithm.MetaBatchSize;
                if (measuring) waiting += clock.Elapsed.TotalSeconds;
                MetaIteration.Run(e.Learner, e.Config.Algorithm, optimizer, batch, it + 1, e.Plan, e.Parallel);
            }
            if (measuring) times.Add(clock.Elapsed.TotalSeconds);
        }
        TraceRss(warmup + iterations);
        PhaseClock.Enabled = false;
        // Wall-clock phases are named so; the rest is thread time inside the tasks, summed over
        // workers: it shows the inner/outer split.
        var phases = new Dictionary<string, double> { ["sampling (wait)"] = waiting };
        foreach (var (k, v) in PhaseClock.SecondsAndReset()) phases[k.EndsWith(')') ? k : $"{k} (thread time)"] = v;
        times.Sort();
        double Pct(double p) => times[(int)Math.Round(p * (times.Count - 1))];
        var median = Pct(0.5);
        return new BenchmarkResult(iterations, warmup, tasks, median, Pct(0.1), Pct(0.9), Memory.PeakRssMb(), rssBefore, peakReset, liveAfterWarmup, Torch.LiveTensors, rssTrace,
            phases.ToDictionary(kv => kv.Key, kv => kv.Value / iterations));
    }
}

/// <summary>Process memory from /proc/self/status (Linux).</summary>
public static class Memory
{
    public static double RssMb() => Read("VmRSS:");
    /// <summary>Memory the .NET garbage collector has committed: the managed part of the RSS.</summary>
    public static double ManagedMb() => GC.GetGCMemoryInfo().TotalCommittedBytes / (1024.0 * 1024.0);
    public static double PeakRssMb() => Read("VmHWM:");

    /// <summary>
    /// Resets the peak RSS (VmHWM) to the current RSS, as writing 5 to /proc/self/clear_refs does
    /// (Linux 4.0 and later); false where the kernel or a sandbox does not allow it, and the peak
    /// then stays the whole process's.
    /// </summary>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static double Read(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return double.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024;
        return double.NaN;
    }
}
