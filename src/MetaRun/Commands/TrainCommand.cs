using System.CommandLine;
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
        var config = new Argument<string?>("config") { Description = "The run's YAML config file (with --resume: optional, the run keeps its own)", Arity = ArgumentArity.ZeroOrOne };
        var outDir = new Option<string?>("--out") { Description = "Run folder to write (default: output.dir/NAME-TIMESTAMP)" };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in this folder from its last checkpoint, with its own config" };
        var command = new Command("train", "Meta-train a model from a YAML config") { config, set, outDir, resume, Nproc.Option, Nproc.Oversubscribe };
        command.SetAction(r =>
        {
            var request = new TrainingRequest(r.GetValue(config), r.GetValue(set) ?? [], r.GetValue(outDir), r.GetValue(resume), r.GetValue(GlobalOptions.DataRoot), r.GetValue(GlobalOptions.Verbose));
            if (Nproc.Requested(r) is { } n) return Nproc.Launch(r, n, TrainingRun.ConfigFor(request).Config);
            return Run(request);
        });
        return command;
    }

    /// <summary>
    /// Trains under SIGINT/SIGTERM handlers (<see cref="GracefulStop"/>): a stopped run exits 130
    /// or 143 with the command that resumes it. Only rank 0 talks to the console; the other ranks
    /// keep their train.rankR.log.
    /// </summary>
    private static int Run(TrainingRequest request)
    {
        void Say(string m) => Console.Error.WriteLine($"metarun: {m}");
        using var run = TrainingRun.Start(request, Say);
        var progress = new ConsoleProgress();
        using var stop = new GracefulStop(m => progress.Say($"metarun: {m}"), "finishing this iteration and saving checkpoints/last");
        if (run.Rank != 0)
        {
            run.Train(null, stop.Token);
            return run.StoppedAt != null ? stop.ExitCode : ExitCodes.Success;
        }
        Console.WriteLine($"run folder: {run.Folder.Path}");
        progress.Run(() => run.Train(progress, stop.Token));
        if (run.StoppedAt is { } at)
        {
            Say($"stopped at iteration {at}, saved in {run.Folder.LastCheckpoint}; resume with: {run.ResumeCommand}");
            return stop.ExitCode;
        }
        Console.WriteLine($"done: checkpoints in {run.Folder.CheckpointDir}");
        Console.WriteLine($"evaluate with: {run.EvaluateCommand}");
        return ExitCodes.Success;
    }
}
