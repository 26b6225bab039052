using System.CommandLine;
using MetaRun.Sweeps;
using Spectre.Console;

namespace MetaRun.Cli.Commands;

/// <summary>metarun sweep SWEEP.yaml [--launcher local|slurm] [--parallel N] [--dry-run] [--status]</summary>
public static class SweepCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("sweep") { Description = "The sweep's YAML file (base config, grid, seeds, eval, slurm)" };
        var launcher = new Option<string>("--launcher") { Description = "Run here (local) or submit one Slurm job array (slurm)", DefaultValueFactory = _ => "local" };
        launcher.AcceptOnlyFromAmong("local", "slurm");
        var parallel = NumberOptions.Int("--parallel", "Local: runs at a time (the cores are divided between them)", 1, 10_000, 1);
        var dryRun = new Option<bool>("--dry-run") { Description = "Slurm: validate and print the sbatch script without submitting" };
        var status = new Option<bool>("--status") { Description = "Show each run's state (manifest, run folders, squeue/sacct)" };
        // What one Slurm array task runs; not for people.
        var arrayTask = new Option<int?>("--array-task") { Hidden = true };
        var maxRuns = NumberOptions.Int("--max-runs", "Refuse a sweep that expands to more runs than this", 1, int.MaxValue, (int)SweepSpec.DefaultMaxRuns);
        var command = new Command("sweep", "Run a grid of configs × seeds, locally or as a Slurm job array; re-running continues it") { file, launcher, parallel, dryRun, status, arrayTask, maxRuns };
        command.SetAction(r => Run(r.GetValue(file)!, r.GetValue(launcher)!, r.GetValue(parallel), r.GetValue(dryRun), r.GetValue(status), r.GetValue(arrayTask), r.GetValue(GlobalOptions.DataRoot), r.GetValue(maxRuns)));
        return command;
    }

    private static int Run(string file, string launcher, int parallel, bool dryRun, bool status, int? arrayTask, string? dataRoot, int maxRuns)
    {
        var spec = SweepSpec.Load(file);
        spec.MaxRuns = maxRuns;
        var cli = CliInvocation.ForAssembly(typeof(MetaRunCli).Assembly.Location);
        if (status) return PrintStatus(spec);

        using var stop = SweepStop.OnSignals(m => Console.Error.WriteLine($"metarun: {m}"));

        if (arrayTask is { } index)
            return SlurmLauncher.RunArrayTask(spec, index, cli, dataRoot, stop) ? ExitCodes.Success : ExitCodes.Failure;

        if (launcher == "slurm")
        {
            var sub = SlurmLauncher.Submit(spec, cli, dataRoot, dryRun, stop.Requested);
            if (dryRun) { Console.Write(sub.Script); return ExitCodes.Success; }
            if (sub.JobId == null) { Console.WriteLine($"sweep {spec.Name}: every run has finished or is queued; nothing to submit"); return ExitCodes.Success; }
            Console.WriteLine($"submitted job array {sub.JobId} ({sub.Indexes.Count} runs) from {sub.ScriptPath}");
            Console.WriteLine($"follow it with: metarun sweep {file} --status");
            return ExitCodes.Success;
        }
        if (dryRun) throw new ConfigException("--dry-run applies to --launcher slurm");

        var outcome = SweepRunner.RunLocal(spec, parallel, cli, dataRoot, new Progress(), stop, Console.WriteLine);
        Console.WriteLine($"sweep {spec.Name} ({spec.Folder}): {outcome.Done}/{outcome.Total} done ({outcome.Skipped} already finished), {outcome.Failures.Count} failed{(outcome.Interrupted ? ", interrupted" : "")}");
        foreach (var f in outcome.Failures)
        {
            Console.WriteLine($"FAILED {f.Name} (combination {f.Combination}, exit {f.ExitCode}); end of its log:");
            foreach (var line in f.LogTail.Split('\n')) Console.WriteLine("    " + line);
        }
        if (outcome.Interrupted) return 130;
        return outcome.Failures.Count > 0 ? ExitCodes.Failure : ExitCodes.Success;
    }

    private static int PrintStatus(SweepSpec spec)
    {
        var rows = SlurmLauncher.Status(spec);
        TableWidth.Apply();
        // A run's name is what a user greps for and pastes: never broken across lines.
        var table = new Table().AddColumns(new TableColumn("run") { NoWrap = true }, new TableColumn("state"), new TableColumn("job"), new TableColumn("slurm"), new TableColumn("iteration"), new TableColumn("test"));
        foreach (var r in rows)
            table.AddRow(Markup.Escape(r.Name), r.State, r.JobId ?? "", r.SlurmState ?? "", $"{r.Iteration?.ToString() ?? "-"}/{r.Iterations}", r.Result ?? "");
        AnsiConsole.Write(table);
        var counts = rows.GroupBy(r => r.State).Select(g => $"{g.Count()} {g.Key}");
        Console.WriteLine($"{rows.Count} runs: {string.Join(", ", counts)}");
        return ExitCodes.Success;
    }

    /// <summary>One line per change: done / running / failed / ETA.</summary>
    private sealed class Progress : IProgress<SweepProgress>
    {
        public void Report(SweepProgress p)
        {
            var eta = p.Eta is { } e ? $", ETA {(int)e.TotalMinutes}m{e.Seconds:00}s" : "";
            Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {p.Done}/{p.Total} done, {p.Running} running, {p.Failed} failed{eta}{(p.Event != null ? $" — {p.Event}" : "")}");
        }
    }
}
