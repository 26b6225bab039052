using System.CommandLine;
using MetaRun.Config;
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
        var command = new Command("train", "Meta-train a model from a YAML config") { config, set, outDir, resume, Nproc.Option };
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

        // Rank 0 creates or checks the run folder and names it for the others (its default name
        // carries rank 0's clock).
        Checkpoint? resume = null;
        RunDirectory? created = null;
        var path = parallel == null ? Decide() : parallel.FromMaster("run folder", Decide);
        string Decide()
        {
            if (resumeDir != null) (created, resume) = RunDirectory.Resume(config, resumeDir, outDir);
            else created = RunDirectory.CreateNew(config, outDir);
            return created.Path;
        }
        var run = created ?? RunDirectory.At(path);
        // The other ranks read the same checkpoint (the run folder is on a shared file system).
        if (resumeDir != null && resume == null) resume = Checkpoint.Load(run.LastCheckpoint);

        using (resume)
        using (var log = run.CreateLog(verbose, rank))
        {
            try
            {
                Experiment.ApplyProcessSettings(config, launch);
                // Data messages (decoding progress, cache rebuilds, classes left out) go to the run's log, and on rank 0 to the terminal.
                using var experiment = Experiment.Create(config, dataRoot, parallel, new MetaRun.Data.DataOptions
                {
                    Log = m =>
                    {
                        log.Information("{Message}", m);
                        if (rank == 0) Console.Error.WriteLine($"metarun: {m}");
                    },
                });
                if (rank != 0)
                {
                    // Only rank 0 talks to the console; the others keep their train.rankR.log.
                    new Trainer(experiment, run, log).Run(resume);
                    return ExitCodes.Success;
                }
                var progress = new ConsoleProgress();
                var trainer = new Trainer(experiment, run, log, progress);
                Console.WriteLine($"run folder: {run.Path}");
                progress.Run(() => trainer.Run(resume));
                Console.WriteLine($"done: checkpoints in {run.CheckpointDir}");
                Console.WriteLine($"evaluate with: ./metarun eval --checkpoint {run.BestOrLast}");
                return ExitCodes.Success;
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
