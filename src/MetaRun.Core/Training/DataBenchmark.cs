using System.Diagnostics;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Training;

/// <summary>The data pipeline's figures for one config (see <see cref="DataBenchmark.Run"/>).</summary>
public sealed record DataBenchmarkResult(
    string Dataset, int Images, EpisodeShape Shape, int TasksPerBatch, double PrepareSeconds, IReadOnlyList<string> PrepareNotes,
    double CachedStartSeconds, int Episodes, double SamplingSeconds)
{
    public double EpisodesPerSecond => Episodes / SamplingSeconds;
}

/// <summary>
/// Times the data pipeline of a config: first-time preparation (decode and resize every image
/// into an empty temporary cache folder), cached start (open again from that cache) and the
/// sampling rate in episodes/s for data.train's episode shape in meta-batches of
/// algorithm.meta_batch_size. The meta-iteration's own benchmark is <see cref="Benchmark"/>.
/// </summary>
public static class DataBenchmark
{
    public static DataBenchmarkResult Run(RunConfig config, string? dataRoot, int episodes)
    {
        if (episodes < 1) throw new ConfigException("--episodes must be at least 1");
        var shape = TaskFamilies.ShapeOf(config.Data, Split.Train);
        var tasks = config.Algorithm.MetaBatchSize;
        var cache = Path.Combine(Path.GetTempPath(), $"metarun-bench-cache-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            var notes = new List<string>();
            var clock = Stopwatch.StartNew();
            TaskFamilies.Open(config.Data, dataRoot, config.Seed, new DataOptions { CacheDir = cache, Log = notes.Add }).Dispose();
            var prepare = clock.Elapsed.TotalSeconds;
            clock.Restart();
            using var family = TaskFamilies.Open(config.Data, dataRoot, config.Seed, new DataOptions { CacheDir = cache });
            var cachedStart = clock.Elapsed.TotalSeconds;
            var images = family is ImageTaskFamily f ? f.Store.ImageCount : 0;

            family.Sample(Split.Train, 0, tasks, shape).Dispose(); // warm-up
            var batches = (episodes + tasks - 1) / tasks;
            clock.Restart();
            for (var b = 0; b < batches; b++) family.Sample(Split.Train, (long)b * tasks, tasks, shape).Dispose();
            return new DataBenchmarkResult(family.Name, images, shape, tasks, prepare, notes.Where(n => n.Contains("prepared")).ToArray(),
                cachedStart, batches * tasks, clock.Elapsed.TotalSeconds);
        }
        finally
        {
            try { if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true); } catch (IOException) { }
        }
    }
}
