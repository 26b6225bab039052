using System.Globalization;
using MetaRun.Config;
using Serilog;

namespace MetaRun.Training;

/// <summary>
/// A run folder and its layout — the one place that names its files:
///   config.yaml        the fully resolved config
///   train.log          the log
///   metrics.jsonl/.csv one row per iteration
///   checkpoints/last.safetensors, checkpoints/best.safetensors
/// It also owns the create-or-resume checks, done before anything is written.
/// </summary>
public sealed class RunDirectory
{
    private const string LastFile = "last.safetensors";

    private RunDirectory(string path) => Path = path;

    public string Path { get; }
    public string ConfigPath => Combine("config.yaml");
    public string LogPath => Combine("train.log");
    public string MetricsJsonlPath => Combine("metrics.jsonl");
    public string MetricsCsvPath => Combine("metrics.csv");
    public string CheckpointDir => Combine("checkpoints");
    public string LastCheckpoint => System.IO.Path.Combine(CheckpointDir, LastFile);
    public string BestCheckpoint => System.IO.Path.Combine(CheckpointDir, "best.safetensors");

    /// <summary>The best checkpoint if validation ever ran, else the last.</summary>
    public string BestOrLast => File.Exists(BestCheckpoint) ? BestCheckpoint : LastCheckpoint;

    private string Combine(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>A run folder as it is, with no checks (tests, tools that read runs).</summary>
    public static RunDirectory At(string path) => new(path);

    /// <summary>
    /// The folder for a new run (--out, or output.dir/NAME-TIMESTAMP), refused if it already holds
    /// a run; created, with config.yaml written.
    /// </summary>
    public static RunDirectory CreateNew(RunConfig config, string? outDir)
    {
        var run = new RunDirectory(outDir ?? System.IO.Path.Combine(config.Output.Dir, $"{config.Name}-{DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}"));
        if (File.Exists(run.LastCheckpoint))
            throw new ConfigException($"{run.Path} already holds a run; continue it with --resume {run.Path} or choose another --out");
        run.WriteConfig(config);
        return run;
    }

    /// <summary>
    /// An interrupted run to continue: its last checkpoint, checked against the config before
    /// anything in the folder is touched; then config.yaml is rewritten (only keys a resume may
    /// change can differ). The caller owns the returned checkpoint.
    /// </summary>
    public static (RunDirectory Run, Checkpoint Last) Resume(RunConfig config, string resumeDir, string? outDir)
    {
        if (outDir != null && System.IO.Path.GetFullPath(outDir) != System.IO.Path.GetFullPath(resumeDir))
            throw new ConfigException("--out and --resume name different folders; a resumed run continues in its own folder");
        var run = new RunDirectory(resumeDir);
        var last = Checkpoint.Load(run.LastCheckpoint);
        try
        {
            last.CheckSameTraining(config, run.LastCheckpoint);
            run.WriteConfig(config);
            return (run, last);
        }
        catch
        {
            last.Dispose();
            throw;
        }
    }

    private void WriteConfig(RunConfig config)
    {
        Directory.CreateDirectory(Path);
        File.WriteAllText(ConfigPath, ConfigLoader.ToYaml(config));
    }

    /// <summary>The run's log file (Serilog), debug level with <paramref name="verbose"/>.</summary>
    public Serilog.Core.Logger CreateLog(bool verbose) => new LoggerConfiguration()
        .MinimumLevel.Is(verbose ? Serilog.Events.LogEventLevel.Debug : Serilog.Events.LogEventLevel.Information)
        .WriteTo.File(LogPath, outputTemplate: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} [{Level:u3}] {Message:lj}{NewLine}{Exception}")
        .CreateLogger();

    /// <summary>A checkpoint file as given, or the last checkpoint of a run folder (or of a checkpoints folder).</summary>
    public static string ResolveCheckpoint(string path)
    {
        if (File.Exists(path)) return path;
        foreach (var candidate in new[] { new RunDirectory(path).LastCheckpoint, System.IO.Path.Combine(path, LastFile) })
            if (File.Exists(candidate)) return candidate;
        throw new CheckpointException(Directory.Exists(path) ? $"{path}: no checkpoints/{LastFile} in this folder" : $"{path}: checkpoint not found");
    }
}
