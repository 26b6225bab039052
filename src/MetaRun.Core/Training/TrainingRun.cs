using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Distributed;
using Serilog;

namespace MetaRun.Training;

/// <summary>What `metarun train` was asked: the config as given, where to write, and whether to continue a run.</summary>
/// <param name="ConfigPath">The config file as the user named it (repeated in the printed resume command).</param>
/// <param name="Sets">The --set overrides as given, likewise.</param>
public sealed record TrainingRequest(string ConfigPath, IReadOnlyList<string> Sets, string? OutDir, string? ResumeDir, string? DataRoot, bool Verbose);

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

    private TrainingRun(TrainingRequest request, Experiment experiment, RunDirectory run, Checkpoint? resume, Serilog.Core.Logger log)
    {
        (this.request, this.experiment, this.run, this.resume, this.log) = (request, experiment, run, resume, log);
    }

    public RunDirectory Folder => run;

    /// <summary>This process's rank (0 when alone): rank 0 alone talks to the console and writes the run folder.</summary>
    public int Rank => experiment.Parallel?.Rank ?? 0;

    /// <summary>The iteration a graceful stop saved, or null when training ran to the end.</summary>
    public long? StoppedAt { get; private set; }

    /// <summary>The command that continues this run, as the user would type it.</summary>
    public string ResumeCommand =>
        $"./metarun train {ShellQuote(request.ConfigPath)} --resume {ShellQuote(run.Path)}{string.Concat(request.Sets.Select(s => $" --set {ShellQuote(s)}"))}";

    /// <summary>The command that meta-tests this run's best checkpoint (its last when it never validated).</summary>
    public string EvaluateCommand => $"./metarun eval --checkpoint {run.BestOrLast}";

    /// <param name="say">Where data-preparation notices go at once (rank 0; the command prints them); they reach the run's log too.</param>
    public static TrainingRun Start(RunConfig config, TrainingRequest request, Action<string> say)
    {
        // Data messages (cache builds take seconds to minutes, docs/data.md) are printed at once and
        // kept until the log exists: the log is only created once every check has passed.
        var rank = Distributed.Launch.FromEnvironment()?.Rank ?? 0;
        var early = new EarlyLog(rank == 0 ? say : null);
        // The run folder takes part in the ranks' agreement: ranks told different folders refuse.
        var experiment = Experiment.Launch(config, request.DataRoot, $"train out={request.OutDir} resume={request.ResumeDir}", new DataOptions { Log = early.Write });
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
            if (owned) run.WriteConfig(config);
            var log = early.Become(run.CreateLog(request.Verbose, rank));
            return new TrainingRun(request, experiment, run, resume, log);
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
        }
        catch (Exception e)
        {
            log.Error(e, "Training stopped: {Message}", e.Message);
            experiment.ReportFailure(e);
            if (e is RankFailedException && File.Exists(run.LastCheckpoint))
                throw new RankFailedException($"{e.Message}; the last checkpoint is intact: continue with --resume {run.Path}", e);
            throw;
        }
    }

    public void Dispose()
    {
        log.Dispose();
        experiment.Dispose();
        resume?.Dispose();
        run.Dispose();
    }

    private static string ShellQuote(string s) =>
        s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "-_./=:+,@".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";

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
