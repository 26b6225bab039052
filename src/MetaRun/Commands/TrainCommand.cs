using System.CommandLine;
using System.Globalization;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Training;
using Serilog;

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
        string runDir;
        Checkpoint? resume = null;
        if (resumeDir != null)
        {
            if (outDir != null && Path.GetFullPath(outDir) != Path.GetFullPath(resumeDir))
                throw new ConfigException("--out and --resume name different folders; a resumed run continues in its own folder");
            runDir = resumeDir;
            resume = Checkpoint.Load(Path.Combine(runDir, "checkpoints", "last.safetensors"));
        }
        else
        {
            runDir = outDir ?? Path.Combine(config.Output.Dir, $"{config.Name}-{DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}");
            if (File.Exists(Path.Combine(runDir, "checkpoints", "last.safetensors")))
                throw new ConfigException($"{runDir} already holds a run; continue it with --resume {runDir} or choose another --out");
        }
        Directory.CreateDirectory(runDir);
        File.WriteAllText(Path.Combine(runDir, "config.yaml"), ConfigLoader.ToYaml(config));

        using var log = new LoggerConfiguration()
            .MinimumLevel.Is(verbose ? Serilog.Events.LogEventLevel.Debug : Serilog.Events.LogEventLevel.Information)
            .WriteTo.File(Path.Combine(runDir, "train.log"), outputTemplate: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} [{Level:u3}] {Message:lj}{NewLine}{Exception}")
            .CreateLogger();
        try
        {
            // Cache builds and rebuilds take seconds to minutes: say so (docs/data.md), on stderr and in train.log.
            var data = new DataOptions { Log = m => { Console.Error.WriteLine($"metarun: {m}"); log.Information("{Message}", m); } };
            using var experiment = Experiment.Create(config, dataRoot, data);
            using (resume)
            {
                var progress = new ConsoleProgress();
                var trainer = new Trainer(experiment, runDir, log, progress);
                Console.WriteLine($"run folder: {runDir}");
                progress.Run(() => trainer.Run(resume));
                Console.WriteLine($"done: checkpoints in {trainer.CheckpointDir}");
                var best = File.Exists(trainer.BestPath) ? trainer.BestPath : trainer.LastPath;
                Console.WriteLine($"evaluate with: ./metarun eval --checkpoint {best}");
            }
            return ExitCodes.Success;
        }
        catch (Exception e)
        {
            log.Error(e, "Training stopped: {Message}", e.Message);
            throw;
        }
    }
}
