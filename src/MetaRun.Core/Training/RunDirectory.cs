using System.Globalization;
using MetaRun.Config;
using Serilog;

namespace MetaRun.Training;

/// <summary>
/// A run folder and its layout — the one place that names its files:
///   config.yaml        the fully resolved config
///   train.log          the log (rank 0's in a data-parallel run; rank R logs to train.rankR.log)
///   metrics.jsonl/.csv one row per iteration
///   checkpoints/last.safetensors, checkpoints/best.safetensors
///   checkpoints/eval.json (metarun eval), curves.png
/// It also owns the create-or-resume checks, done before anything is written.
/// </summary>
public sealed class RunDirectory : IDisposable
{
    private const string LastFile = "last.safetensors";
    private const string LockFile = ".lock";
    private const string OwnerFile = ".owner";

    // The OS lock that makes this process the folder's one owner (see Own).
    private FileStream? ownership;

    private RunDirectory(string path) => Path = path;

    public string Path { get; }
    public string ConfigPath => Combine("config.yaml");
    public string LogPath => Combine("train.log");
    public string MetricsJsonlPath => Combine("metrics.jsonl");
    public string MetricsCsvPath => Combine("metrics.csv");
    public string CheckpointDir => Combine("checkpoints");
    public string LastCheckpoint => System.IO.Path.Combine(CheckpointDir, LastFile);
    public string BestCheckpoint => System.IO.Path.Combine(CheckpointDir, "best.safetensors");
    /// <summary>Where metarun eval writes its result for this run's checkpoints (beside them).</summary>
    public string EvalResult => System.IO.Path.Combine(CheckpointDir, Evaluation.Evaluator.ResultFile);
    /// <summary>The learning curves, redrawn at every checkpoint.</summary>
    public string CurvesPath => Combine("curves.png");

    /// <summary>The best checkpoint if validation ever ran, else the last.</summary>
    public string BestOrLast => File.Exists(BestCheckpoint) ? BestCheckpoint : LastCheckpoint;

    private string Combine(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>A run folder as it is, with no checks (tests, tools that read runs).</summary>
    public static RunDirectory At(string path) => new(path);

    /// <summary>
    /// The folder for a new run, checked and owned (<see cref="Own"/>) but with nothing written in
    /// it yet: the caller finishes its own checks (the data set, the model), then calls
    /// <see cref="WriteConfig"/>; if they fail, <see cref="Abandon"/> leaves no trace.
    /// </summary>
    public static RunDirectory Claim(RunConfig config, string? outDir)
    {
        var run = new RunDirectory(outDir ?? System.IO.Path.Combine(config.Output.Dir, $"{config.Name}-{DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}"));
        if (File.Exists(run.Path)) throw new ConfigException($"{run.Path}: is a file; the run folder must be a folder (choose another --out)");
        // Owned first, so a folder another process is training in is named as such (with its PID).
        run.Own(created: !Directory.Exists(run.Path));
        if (File.Exists(run.LastCheckpoint))
        {
            run.Dispose();
            throw new ConfigException($"{run.Path} already holds a run; continue it with --resume {run.Path} or choose another --out");
        }
        return run;
    }

    private bool createdByUs;

    /// <summary>
    /// Makes this process the folder's only owner until it exits (or <see cref="Dispose"/>): an
    /// exclusive lock on .lock (flock on Linux, taken by FileShare.None), which the kernel releases
    /// on any exit, kill -9 included, so a crashed run never leaves a stale lock. Its PID goes to
    /// .owner (a second file: the locked one cannot be read by others), so a refused second
    /// process can name it.
    /// </summary>
    private void Own(bool created)
    {
        try
        {
            Directory.CreateDirectory(Path);
            createdByUs = created;
            ownership = new FileStream(Combine(LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException) when (File.Exists(Combine(LockFile)))
        {
            string owner;
            try { owner = File.ReadAllText(Combine(OwnerFile)).Trim(); }
            catch (IOException) { owner = "unknown"; }
            throw new ConfigException($"{Path}: in use by another metarun process (PID {owner}); wait for it to finish, stop it, or choose another --out");
        }
        File.WriteAllText(Combine(OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
    }

    /// <summary>Gives up a claimed folder whose checks failed: removes what <see cref="Claim"/> made.</summary>
    public void Abandon()
    {
        var remove = createdByUs;
        Dispose();
        // Only a folder this process made: in an existing one another process may be opening .lock.
        if (!remove) return;
        foreach (var f in new[] { OwnerFile, LockFile }) File.Delete(Combine(f));
        if (Directory.Exists(Path) && !Directory.EnumerateFileSystemEntries(Path).Any()) Directory.Delete(Path);
    }

    /// <summary>Releases ownership (the process's exit does too).</summary>
    public void Dispose()
    {
        ownership?.Dispose();
        ownership = null;
    }

    /// <summary>
    /// An interrupted run to continue, owned: its last checkpoint, checked against the config before
    /// anything in the folder is touched. The caller owns the returned checkpoint and calls
    /// <see cref="WriteConfig"/> once its own checks have passed.
    /// </summary>
    public static (RunDirectory Run, Checkpoint Last) Resume(RunConfig config, string resumeDir, string? outDir)
    {
        if (outDir != null && System.IO.Path.GetFullPath(outDir) != System.IO.Path.GetFullPath(resumeDir))
            throw new ConfigException("--out and --resume name different folders; a resumed run continues in its own folder");
        var run = new RunDirectory(resumeDir);
        if (!Directory.Exists(run.Path)) throw new CheckpointException($"{run.Path}: no such run folder to resume");
        // Owned before reading: a run still training here is refused, not read mid-write.
        run.Own(created: false);
        Checkpoint? last = null;
        try
        {
            last = Checkpoint.Load(run.LastCheckpoint);
            last.CheckSameTraining(config, run.LastCheckpoint);
            return (run, last);
        }
        catch
        {
            last?.Dispose();
            run.Dispose();
            throw;
        }
    }

    /// <summary>Writes config.yaml: call once every check has passed (a resume's rewrite changes only keys a resume may change).</summary>
    public void WriteConfig(RunConfig config)
    {
        Directory.CreateDirectory(Path);
        File.WriteAllText(ConfigPath, ConfigLoader.ToRunYaml(config));
    }

    /// <summary>Where rank <paramref name="rank"/> of a data-parallel run logs (rank 0: the run's own log).</summary>
    private string RankLogPath(int rank) => rank == 0 ? LogPath : Combine($"train.rank{rank}.log");

    /// <summary>The run's log file (Serilog), debug level with <paramref name="verbose"/>; <paramref name="rank"/> > 0 logs beside it.</summary>
    public Serilog.Core.Logger CreateLog(bool verbose, int rank = 0) => new LoggerConfiguration()
        .MinimumLevel.Is(verbose ? Serilog.Events.LogEventLevel.Debug : Serilog.Events.LogEventLevel.Information)
        .WriteTo.File(RankLogPath(rank), outputTemplate: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} [{Level:u3}] {Message:lj}{NewLine}{Exception}")
        .CreateLogger();

    /// <summary>
    /// A checkpoint file as given; for a run folder (or its checkpoints folder) its best
    /// checkpoint, or its last where it never validated: the one training points `eval` at.
    /// </summary>
    public static string ResolveCheckpoint(string path)
    {
        if (File.Exists(path)) return path;
        var inside = System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(path)) == "checkpoints";
        var run = new RunDirectory(inside ? System.IO.Path.GetDirectoryName(System.IO.Path.TrimEndingDirectorySeparator(path))! : path);
        if (File.Exists(run.BestOrLast)) return run.BestOrLast;
        throw new CheckpointException(Directory.Exists(path) ? $"{path}: no checkpoints/best.safetensors or checkpoints/{LastFile} in this folder" : $"{path}: checkpoint not found");
    }
}
