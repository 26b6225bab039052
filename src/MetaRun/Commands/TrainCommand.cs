using System.CommandLine;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Training;

namespace MetaRun.Cli.Commands;

/// <summary>metarun train CONFIG [--set k=v]... [--out RUN_DIR] [--resume RUN_DIR]</summary>
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
        var command = new Command("train", "Meta-train a model from a YAML config") { config, set, outDir, resume };
        command.SetAction(r => Run(r.GetValue(config)!, r.GetValue(set) ?? [], r.GetValue(outDir), r.GetValue(resume), r.GetValue(GlobalOptions.DataRoot), r.GetValue(GlobalOptions.Verbose)));
        return command;
    }

    private static int Run(string configPath, string[] sets, string? outDir, string? resumeDir, string? dataRoot, bool verbose)
    {
        var config = ConfigLoader.Load(configPath, sets);
        Checkpoint? resume = null;
        RunDirectory run;
        if (resumeDir != null) (run, resume) = RunDirectory.Resume(config, resumeDir, outDir);
        else run = RunDirectory.CreateNew(config, outDir);

        using (resume)
        using (var log = run.CreateLog(verbose))
        {
            try
            {
                Experiment.ApplyProcessSettings(config);
                // Cache builds and rebuilds take seconds to minutes: say so (docs/data.md), on stderr and in train.log.
                var data = new DataOptions { Log = m => { Console.Error.WriteLine($"metarun: {m}"); log.Information("{Message}", m); } };
                using var experiment = Experiment.Create(config, dataRoot, data);
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
                throw;
            }
        }
    }
}
