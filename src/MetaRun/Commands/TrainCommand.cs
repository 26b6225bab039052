using System.CommandLine;
using System.Runtime.InteropServices;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Distributed;
using MetaRun.Training;

namespace MetaRun.Cli.Commands;

/// <summary>metarun train CONFIG [--set k=v]... [--out RUN_DIR] [--resume RUN_DIR] [--nproc N]</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var set = new Option<string[]>("--set")
        {
            Description = "Override a config key, e.g. --set algorithm.inner_lr=0.1 (repeatable)",
            AllowMultipleArgumentsPerToken = false,
        };
        var config = new Argument<string>("config") { Description = "The run's YAML config file" };
        var outDir = new Option<string?>("--out") { Description = "Run folder to write (default: output.dir/NAME-TIMESTAMP)" };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder from its last checkpoint" };
        var command = new Command("train", "Meta-train a model from a YAML config") { config, set, outDir, resume, Nproc.Option, Nproc.Oversubscribe };
        command.SetAction(r =>
        {
            var sets = r.GetValue(set) ?? [];
            if (Nproc.Requested(r) is { } n) return Nproc.Launch(r, n, ConfigLoader.Load(r.GetValue(config)!, sets));
            return Run(r.GetValue(config)!, sets, r.GetValue(outDir), r.GetValue(resume), r.GetValue(GlobalOptions.DataRoot), r.GetValue(GlobalOptions.Verbose));
        });
        return command;
    }

    private static int Run(string configPath, string[] sets, string? outDir, string? resumeDir, string? dataRoot, bool verbose)
    {
        var config = ConfigLoader.Load(configPath, sets);
        var launch = Launch.FromEnvironment();
        // The run folder takes part in the ranks' agreement: ranks told different folders refuse.
        using var parallel = DataParallel.JoinIfLaunched(launch, config, $"train out={outDir} resume={resumeDir}");
        var rank = parallel?.Rank ?? 0;

        // Rank 0 claims (or resumes) the run folder and names it for the others (its default name
        // carries rank 0's clock); the others read the same checkpoint from the shared folder.
        Checkpoint? resume = null;
        RunDirectory? owned = null;
        var path = parallel == null ? Decide() : parallel.FromMaster("run folder", Decide);
        string Decide()
        {
            if (resumeDir != null) (owned, resume) = RunDirectory.Resume(config, resumeDir, outDir);
            else owned = RunDirectory.Claim(config, outDir);
            return owned.Path;
        }
        var run = owned ?? RunDirectory.At(path);
        if (resumeDir != null && resume == null) resume = Checkpoint.Load(run.LastCheckpoint);

        using (run)
        using (resume)
        {
            // Checks that need the data set and the model come before anything is written in the
            // run folder; data messages (cache builds, seconds to minutes, docs/data.md) go to
            // stderr at once (rank 0) and into the log once it exists.
            Serilog.Core.Logger? log = null;
            var early = new List<string>();
            var data = new DataOptions
            {
                Log = m =>
                {
                    if (rank == 0) Console.Error.WriteLine($"metarun: {m}");
                    lock (early)
                    {
                        if (log != null) log.Information("{Message}", m);
                        else early.Add(m);
                    }
                },
            };
            Experiment experiment;
            try
            {
                Experiment.ApplyProcessSettings(config, launch);
                experiment = Experiment.Create(config, dataRoot, parallel, data);
                resume?.CheckFits(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, run.LastCheckpoint);
            }
            catch (Exception e)
            {
                parallel?.ReportFailure(e);
                if (resume == null && owned != null) run.Abandon();
                throw;
            }
            using (experiment)
            {
                if (owned != null) run.WriteConfig(config);
                lock (early)
                {
                    log = run.CreateLog(verbose, rank);
                    foreach (var m in early) log.Information("{Message}", m);
                }
                using (log)
                {
                    try
                    {
                        return Train(experiment, run, resume, log, configPath, sets, rank);
                    }
                    catch (Exception e)
                    {
                        log.Error(e, "Training stopped: {Message}", e.Message);
                        parallel?.ReportFailure(e);
                        if (e is RankFailedException && File.Exists(run.LastCheckpoint))
                            throw new RankFailedException($"{e.Message}; the last checkpoint is intact: continue with --resume {run.Path}", e);
                        throw;
                    }
                }
            }
        }
    }

    /// <summary>
    /// The training itself, under SIGINT/SIGTERM handlers: the first signal finishes the current
    /// outer step, writes checkpoints/last (atomically) and exits 130 (SIGINT) or 143 (SIGTERM)
    /// with the command that resumes; a second one exits at once. Slurm preempts with SIGTERM.
    /// </summary>
    private static int Train(Experiment experiment, RunDirectory run, Checkpoint? resume, Serilog.ILogger log, string configPath, string[] sets, int rank)
    {
        using var stop = new CancellationTokenSource();
        var signalled = 0;
        void OnSignal(PosixSignalContext context, int code)
        {
            context.Cancel = true;
            // Supervised (a sweep): the supervisor got the same signal and asks through SupervisedStop.
            if (SupervisedStop.Active) return;
            var name = context.Signal == PosixSignal.SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)";
            if (Interlocked.CompareExchange(ref signalled, code, 0) == 0)
            {
                Console.Error.WriteLine($"metarun: {name}: finishing this iteration and saving checkpoints/last; send it again to stop at once");
                stop.Cancel();
                return;
            }
            Console.Error.WriteLine($"metarun: {name} again: stopping now; the run resumes from its last checkpoint");
            Environment.Exit(code);
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => OnSignal(c, 130));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => OnSignal(c, 143));
        if (SupervisedStop.Active)
            SupervisedStop.Watch(() => { if (Interlocked.CompareExchange(ref signalled, 143, 0) == 0) stop.Cancel(); });

        if (rank != 0)
        {
            // Only rank 0 talks to the console; the others keep their train.rankR.log.
            var quiet = new Trainer(experiment, run, log) { Stop = stop.Token };
            quiet.Run(resume);
            return quiet.StoppedAt != null ? StoppedCode(signalled) : ExitCodes.Success;
        }
        var progress = new ConsoleProgress();
        var trainer = new Trainer(experiment, run, log, progress) { Stop = stop.Token };
        Console.WriteLine($"run folder: {run.Path}");
        progress.Run(() => trainer.Run(resume));
        if (trainer.StoppedAt is { } at)
        {
            var again = string.Concat(sets.Select(s => $" --set {Quote(s)}"));
            Console.Error.WriteLine($"metarun: stopped at iteration {at}, saved in {run.LastCheckpoint}; resume with: ./metarun train {Quote(configPath)} --resume {Quote(run.Path)}{again}");
            return StoppedCode(signalled);
        }
        Console.WriteLine($"done: checkpoints in {run.CheckpointDir}");
        Console.WriteLine($"evaluate with: ./metarun eval --checkpoint {Quote(run.BestOrLast)}");
        return ExitCodes.Success;
    }

    /// <summary>A stopped run exits with its signal's code; a rank stopped because another rank was signalled, with SIGTERM's.</summary>
    private static int StoppedCode(int signalled) => signalled != 0 ? signalled : 143;

    private static string Quote(string s) => s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "-_./=:+,@".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";
}
