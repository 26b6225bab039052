using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using LibTorch;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Cli.Commands;

/// <summary>metarun bench: timings. --data CONFIG measures the data pipeline (<see cref="RunData"/>).</summary>
public static class BenchCommand
{
    public static readonly Option<string?> Data = new("--data") { Description = "Benchmark the data pipeline of this config: first-time preparation, cached start, episodes/s" };
    public static readonly Option<int> Episodes = new("--episodes") { Description = "Episodes to sample for the sampling rate", DefaultValueFactory = _ => 20000 };
    public static readonly Option<string[]> Set = new("--set") { Description = "Override a config key: key.path=value (repeatable)" };

    public static Command Create()
    {
        var command = new Command("bench", "Measure performance (--data CONFIG: the data pipeline)") { Data, Episodes, Set };
        command.SetAction(parse =>
        {
            var data = parse.GetValue(Data);
            if (data != null)
                return RunData(data, parse.GetValue(Set) ?? [], parse.GetValue(GlobalOptions.DataRoot), parse.GetValue(Episodes), Console.Out);
            Console.Error.WriteLine("metarun: bench needs --data CONFIG (the training benchmark is not written yet)");
            return ExitCodes.BadUsage;
        });
        return command;
    }

    /// <summary>
    /// Times the data pipeline of a config: first-time preparation (decode and resize every
    /// image into an empty temporary cache folder), cached start (open again from that cache)
    /// and the sampling rate in episodes/s for data.train's episode shape in meta-batches of
    /// algorithm.meta_batch_size. Prints the figures and writes them to <paramref name="jsonPath"/>.
    /// </summary>
    public static int RunData(string configPath, IReadOnlyList<string> sets, string? dataRoot, int episodes, TextWriter output, string jsonPath = "bench-data.json")
    {
        if (episodes < 1) throw new MetaRunException(ExitCodes.BadUsage, "--episodes must be at least 1");
        var config = ConfigLoader.Load(configPath, sets);
        var shape = TaskFamilies.ShapeOf(config.Data, Split.Train);
        var tasks = config.Algorithm.MetaBatchSize;
        var cache = Path.Combine(Path.GetTempPath(), $"metarun-bench-cache-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            var options = new DataOptions { CacheDir = cache };
            var notes = new List<string>();
            var clock = Stopwatch.StartNew();
            TaskFamilies.Open(config.Data, dataRoot, config.Seed, new DataOptions { CacheDir = cache, Log = notes.Add }).Dispose();
            var prepare = clock.Elapsed.TotalSeconds;
            clock.Restart();
            using var family = TaskFamilies.Open(config.Data, dataRoot, config.Seed, options);
            var cachedStart = clock.Elapsed.TotalSeconds;
            var images = family is ImageTaskFamily f ? f.Store.ImageCount : 0;

            family.Sample(Split.Train, 0, tasks, shape).Dispose(); // warm-up
            var batches = (episodes + tasks - 1) / tasks;
            clock.Restart();
            for (var b = 0; b < batches; b++) family.Sample(Split.Train, (long)b * tasks, tasks, shape).Dispose();
            var sampling = clock.Elapsed.TotalSeconds;
            var rate = batches * tasks / sampling;

            var label = $"{family.Name}, {shape.Ways}-way {shape.Shots}-shot {shape.Queries}-query, meta-batches of {tasks}";
            output.WriteLine($"data bench: {label}; {Environment.ProcessorCount} cores, {Torch.Threads} torch threads");
            output.WriteLine($"  first-time preparation ({images} images, empty cache): {prepare:F2} s");
            foreach (var note in notes.Where(n => n.Contains("prepared"))) output.WriteLine($"    {note}");
            output.WriteLine($"  cached start:                                   {cachedStart:F3} s");
            output.WriteLine($"  sampling: {batches * tasks} episodes in {sampling:F2} s = {rate:F0} episodes/s");
            var json = new Dictionary<string, object>
            {
                ["config"] = Path.GetFullPath(configPath),
                ["dataset"] = family.Name,
                ["images"] = images,
                ["ways"] = shape.Ways,
                ["shots"] = shape.Shots,
                ["queries"] = shape.Queries,
                ["tasks_per_batch"] = tasks,
                ["prepare_seconds"] = Math.Round(prepare, 3),
                ["cached_start_seconds"] = Math.Round(cachedStart, 4),
                ["episodes"] = batches * tasks,
                ["episodes_per_second"] = Math.Round(rate, 1),
                ["cores"] = Environment.ProcessorCount,
                ["torch_threads"] = Torch.Threads,
            };
            File.WriteAllText(jsonPath, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }) + "\n");
            output.WriteLine($"  wrote {jsonPath}");
            return ExitCodes.Success;
        }
        finally
        {
            try { if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true); } catch (IOException) { }
        }
    }
}
