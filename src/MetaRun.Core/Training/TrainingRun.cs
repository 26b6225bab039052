using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Distributed;
using Serilog;

namespace MetaRun.Training;

/// <summary>What `metarun train` was asked: the config and overrides as given (none when resuming from the run's own), where to write, and whether to continue a run.</summary>
public sealed record TrainingRequest(string? ConfigPath, IReadOnlyList<string> Sets, string? OutDir, string? ResumeDir, string? DataRoot, bool Verbose);

/// <summary>
/// One training run from start to end, in every rank of a data-parallel run: the experiment
/// launched, the run folder claimed or resumed (rank 0 decides, the others follow its name), the
/// log, the trainer, and failures reported to the other ranks. Checks that need the data set, the
/// model and the checkpoint all come before anything is written in the run folder.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    private readonly TrainingRequest request;
    private readonly Experiment experiment;
    private readonly RunDirectory run;
    private readonly Checkpoint? resume;
    private readonly Serilog.Core.Logger log;
    private readonly bool owned;

    private TrainingRun(TrainingRequest request, Experiment experiment, RunDirectory run, Checkpoint? resume, Serilog.Core.Logger log, bool owned)
    {
        (this.request, this.experiment, this.run, this.resume, this.log, this.owned) = (request, experiment, run, resume, log, owned);
    }

    /// <summary>
    /// What a resumed run may change, given in a config file or with --set: the budget, how often
    /// it validates and checkpoints, how long ranks wait, and how its work is laid out on the
    /// machine (and in memory: checkpointed inner steps). Anything else would make it a different experiment. The name and output folder
    /// of a given config are ignored: the run keeps its own folder.
    /// </summary>
    public static readonly IReadOnlyList<string> ResumeChangeableKeys =
        ["algorithm.iterations", "eval.interval", "checkpoint.interval", "distributed.timeout", "workers", "threads", "execution", "algorithm.checkpoint_inner_steps"];

    private static readonly string[] IgnoredOnResume = ["name", "output.dir"];

    /// <summary>
    /// The config a request trains with, and what a resume changes. A new run: the config file
    /// with its --set overrides. A resume: the run's own config.yaml, changed only in
    /// <see cref="ResumeChangeableKeys"/> by a config file or --set given with it; any other
    /// difference is refused, naming each key with both values.
    /// </summary>
    public static (RunConfig Config, IReadOnlyList<(string Key, string Was, string Now)> Changes) ConfigFor(TrainingRequest request)
    {
        if (request.ResumeDir == null)
            return (ConfigLoader.Load(request.ConfigPath ?? throw new ConfigException("train needs a CONFIG file, or --resume RUN_DIR to continue a run"), request.Sets), []);
        var own = RunDirectory.At(request.ResumeDir).ConfigPath;
        if (!File.Exists(own))
            throw new CheckpointException(Directory.Exists(request.ResumeDir) ? $"{request.ResumeDir}: not a run folder (no config.yaml) to resume" : $"{request.ResumeDir}: no such run folder to resume");
        var was = ConfigLoader.Load(own, []);
        var now = ConfigLoader.Load(request.ConfigPath ?? own, request.Sets);
        now.Name = was.Name;
        now.Output = was.Output;
        var differences = ConfigKeys.Differences(was, now).Where(d => !IgnoredOnResume.Contains(d.Key)).ToList();
        var refused = differences.Where(d => !ResumeChangeableKeys.Contains(d.Key)).ToList();
        if (refused.Count > 0)
            throw new ConfigException($"{request.ResumeDir}: resuming would change the experiment: " +
                string.Join("; ", refused.Select(d => $"{d.Key} is {Show(d.Was)} in the run, {Show(d.Now)} {(request.ConfigPath != null ? $"in {request.ConfigPath}" : "with --set")}")) +
                $". A resume may change only {string.Join(", ", ResumeChangeableKeys)}; start a new run for anything else");
        return (now, differences);
    }

    private static string Show(string value) => value.Length == 0 ? "unset" : $"'{value}'";

    public RunDirectory Folder => run;

    /// <summary>This process's rank (0 when alone): rank 0 alone talks to the console and writes the run folder.</summary>
    public int Rank => experiment.Parallel?.Rank ?? 0;

    /// <summary>The iteration a graceful stop saved, or null when training ran to the end.</summary>
    public long? StoppedAt { get; private set; }

    /// <summary>The command that continues this run, as the user would type it in the same folder: the run keeps its own config.</summary>
    public string ResumeCommand => ShellCommand.Of(["train", "--resume", run.Path, .. DataRootArguments, .. NprocArguments]);

    // A rank of --nproc resumes as the same number of ranks (docs/distributed.md).
    private static string[] NprocArguments =>
        Distributed.RankSupervision.Active && Distributed.Launch.FromEnvironment() is { WorldSize: > 1 } l ? ["--nproc", l.WorldSize.ToString(System.Globalization.CultureInfo.InvariantCulture)] : [];

    /// <summary>The command that meta-tests this run's best checkpoint (its last when it never validated).</summary>
    public string EvaluateCommand => ShellCommand.Of(["eval", run.Path, .. DataRootArguments]);

    private string[] DataRootArguments => request.DataRoot is { } root ? ["--data-root", root] : [];

    /// <param name="say">Where notices go at once (rank 0; the command prints them): data preparation (also into the run's log) and what a resume changes.</param>
    public static TrainingRun Start(TrainingRequest request, Action<string> say)
    {
        var (config, changes) = ConfigFor(request);
        // Data messages (cache builds take seconds to minutes, docs/data.md) are printed at once and
        // kept until the log exists: the log is only created once every check has passed.
        var rank = Distributed.Launch.FromEnvironment()?.Rank ?? 0;
        var early = new EarlyLog(rank == 0 ? say : null);
        // The run folder takes part in the ranks' agreement: ranks told different folders refuse.
        var experiment = Experiment.Launch(config, request.DataRoot, $"train out={request.OutDir} resume={request.ResumeDir}", new DataOptions { Log = early.Write, Splits = TaskFamilies.TrainingNeeds(config) });
        RunDirectory? run = null;
        Checkpoint? resume = null;
        var owned = false;
        try
        {
            // Rank 0 claims (or resumes) the folder and names it for the others (its default name
            // carries rank 0's clock); the others read the same checkpoint from the shared folder.
            string Decide()
            {
                owned = true;
                if (request.ResumeDir != null) (run, resume) = RunDirectory.Resume(config, request.ResumeDir, request.OutDir);
                else run = RunDirectory.Claim(config, request.OutDir);
                return run.Path;
            }
            var path = experiment.Parallel == null ? Decide() : experiment.Parallel.FromMaster("run folder", Decide);
            run ??= RunDirectory.At(path);
            if (request.ResumeDir != null) resume ??= Checkpoint.Load(run.LastCheckpoint);
            resume?.CheckFits(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, run.LastCheckpoint);
            if (owned)
            {
                run.WriteConfig(config);
                foreach (var (key, was, now) in changes) say($"resuming with {key} {Show(was)} → {Show(now)} (recorded in {Provenance.FileName})");
                Provenance.Started(run, resume == null ? "start" : "resume", experiment, request.DataRoot, changes);
            }
            var log = early.Become(run.CreateLog(request.Verbose, rank));
            return new TrainingRun(request, experiment, run, resume, log, owned);
        }
        catch (Exception e)
        {
            experiment.ReportFailure(e);
            resume?.Dispose();
            if (resume == null && owned) run?.Abandon();
            else run?.Dispose();
            experiment.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Trains to the configured iteration count (from the last checkpoint when resuming).
    /// <paramref name="stop"/> is a graceful stop: the current outer step finishes,
    /// checkpoints/last is written and <see cref="StoppedAt"/> is set.
    /// </summary>
    public void Train(ITrainingObserver? observer, CancellationToken stop)
    {
        var trainer = new Trainer(experiment, run, log, observer) { Stop = stop };
        try
        {
            trainer.Run(resume);
            StoppedAt = trainer.StoppedAt;
            if (owned) Provenance.Ended(run, StoppedAt == null ? "finished" : "stopped", StoppedAt ?? experiment.Config.Algorithm.Iterations);
        }
        catch (Exception e)
        {
            log.Error(e, "Training stopped: {Message}", e.Message);
            if (owned) TryRecordFailure(e);
            experiment.ReportFailure(e);
            if (e is RankFailedException && File.Exists(run.LastCheckpoint))
                throw new RankFailedException($"{e.Message}; the last checkpoint is intact: continue with --resume {run.Path}", e);
            throw;
        }
    }

    private void TryRecordFailure(Exception e)
    {
        try { Provenance.Ended(run, "failed", null, e.Message); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public void Dispose()
    {
        log.Dispose();
        experiment.Dispose();
        resume?.Dispose();
        run.Dispose();
    }

    /// <summary>Messages that arrive before the run's log exists: shown at once, then replayed into the log.</summary>
    private sealed class EarlyLog(Action<string>? show)
    {
        private readonly List<string> kept = [];
        private ILogger? log;

        public void Write(string message)
        {
            show?.Invoke(message);
            lock (kept)
            {
                if (log != null) log.Information("{Message}", message);
                else kept.Add(message);
            }
        }

        public Serilog.Core.Logger Become(Serilog.Core.Logger created)
        {
            lock (kept)
            {
                log = created;
                foreach (var m in kept) created.Information("{Message}", m);
                kept.Clear();
            }
            return created;
        }
    }
}
