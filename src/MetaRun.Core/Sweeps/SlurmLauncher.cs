using System.Diagnostics;
using System.Globalization;
using System.Text;
using MetaRun.Reports;

namespace MetaRun.Sweeps;

/// <summary>One row of `metarun sweep --status`.</summary>
public sealed record RunStatus(string Name, string State, string? JobId, string? SlurmState, long? Iteration, long Iterations, string? Result);

/// <summary>
/// Submits a sweep as one sbatch job array (one array task per unfinished run, each running
/// `metarun sweep FILE --array-task I`, which trains and evaluates that run through the CLI) and
/// reads the queue back for --status.
/// </summary>
public static class SlurmLauncher
{
    public sealed record Submission(string Script, string? ScriptPath, string? JobId, IReadOnlyList<int> Indexes);

    public static Submission Submit(SweepSpec spec, CliInvocation cli, string? dataRoot, bool dryRun, CancellationToken cancel = default)
    {
        var runs = spec.ExpandAndValidate(cancel);
        IReadOnlyList<int> todo;
        if (dryRun)
        {
            var existing = SweepManifest.Read(spec.Folder);
            todo = runs.Where(r => existing?.Runs.FirstOrDefault(m => m.Name == r.Name) is not { } m || !SweepRunner.IsFinished(spec, m)).Select(r => r.Index).ToList();
        }
        else
        {
            var manifest = SweepRunner.Sync(spec, runs, refuseLive: false);
            var live = LiveTasks(manifest);
            todo = manifest.Runs.Where(r => !SweepRunner.IsFinished(spec, r) && !(r.JobId != null && live.ContainsKey(r.JobId))).Select(r => r.Index).ToList();
        }
        var script = Script(spec, todo, cli, dataRoot);
        if (dryRun || todo.Count == 0) return new Submission(script, null, null, todo);

        var dir = Path.Combine(spec.Folder, "slurm");
        Directory.CreateDirectory(dir);
        Directory.CreateDirectory(SweepRunner.LogsDir(spec));
        var path = Path.Combine(dir, $"array-{DateTime.UtcNow:yyyyMMdd-HHmmss}.sbatch");
        File.WriteAllText(path, script);
        // Queued before sbatch returns: a quick array task may already be running (or done) by
        // the time its job id is known, and must not be set back to queued.
        SweepManifest.Update(spec.Folder, m =>
        {
            foreach (var r in m.Runs.Where(r => todo.Contains(r.Index)))
            {
                r.State = RunState.Queued;
                r.JobId = null;
            }
        });
        var (code, output, error) = Tool("sbatch", ["--parsable", path]);
        if (code != 0)
        {
            SweepManifest.Update(spec.Folder, m =>
            {
                foreach (var r in m.Runs.Where(r => todo.Contains(r.Index) && r.State == RunState.Queued)) r.State = RunState.Pending;
            });
            throw new MetaRunException(ExitCodes.Failure, $"sbatch {path} failed (exit {code}): {error.Trim()}");
        }
        var jobId = output.Trim().Split(';')[0];
        SweepManifest.Update(spec.Folder, m =>
        {
            m.SlurmJobs.Add(jobId);
            foreach (var r in m.Runs.Where(r => todo.Contains(r.Index))) r.JobId ??= $"{jobId}_{r.Index}";
        });
        return new Submission(script, path, jobId, todo);
    }

    /// <summary>The sbatch script for the given run indexes (an array over exactly those).</summary>
    public static string Script(SweepSpec spec, IReadOnlyList<int> indexes, CliInvocation cli, string? dataRoot)
    {
        var s = spec.Slurm;
        var b = new StringBuilder();
        b.AppendLine("#!/bin/bash");
        b.AppendLine($"#SBATCH --job-name=metarun-{spec.Name}");
        b.AppendLine($"#SBATCH --array={Ranges(indexes)}{(s.Throttle is { } p ? $"%{p}" : "")}");
        b.AppendLine($"#SBATCH --output={Path.Combine(SweepRunner.LogsDir(spec), "slurm-%A_%a.out")}");
        b.AppendLine($"#SBATCH --chdir={Environment.CurrentDirectory}");
        if (s.CpusPerTask > 0) b.AppendLine($"#SBATCH --cpus-per-task={s.CpusPerTask}");
        if (s.Partition != null) b.AppendLine($"#SBATCH --partition={s.Partition}");
        if (s.Time != null) b.AppendLine($"#SBATCH --time={s.Time}");
        if (s.Gpus != null) b.AppendLine($"#SBATCH --gpus={s.Gpus}");
        if (s.Mem != null) b.AppendLine($"#SBATCH --mem={s.Mem}");
        foreach (var e in s.Extra) b.AppendLine(e.StartsWith("#SBATCH", StringComparison.Ordinal) ? e : $"#SBATCH {e}");
        b.AppendLine("set -euo pipefail");
        b.AppendLine("# Each run sizes its workers and threads to the CPUs Slurm gave this task.");
        b.AppendLine("export DOTNET_PROCESSOR_COUNT=\"${SLURM_CPUS_PER_TASK:-1}\"");
        var args = cli.Prefix.Concat(["sweep", spec.File]).Select(Quote).Append("--array-task \"$SLURM_ARRAY_TASK_ID\"");
        if (dataRoot != null) args = args.Append("--data-root " + Quote(Path.GetFullPath(dataRoot)));
        b.AppendLine("# exec: scancel and --signal=B:TERM@SECONDS reach metarun itself, which has its run save checkpoints/last before it exits.");
        b.AppendLine($"exec {Quote(cli.FileName)} {string.Join(" ", args)}");
        return b.ToString();
    }

    /// <summary>The run behind one array task: trains and evaluates it; exit 0 when it finished.</summary>
    public static bool RunArrayTask(SweepSpec spec, int index, CliInvocation cli, string? dataRoot, SweepStop stop)
    {
        var jobId = Environment.GetEnvironmentVariable("SLURM_ARRAY_JOB_ID") is { } j ? $"{j}_{index}" : null;
        return SweepRunner.RunOne(spec, index, cli, dataRoot, new Dictionary<string, string>(), jobId, stop);
    }

    /// <summary>Every run's state from the manifest and run folder, with what squeue (or sacct) says of its job.</summary>
    public static IReadOnlyList<RunStatus> Status(SweepSpec spec)
    {
        var manifest = SweepManifest.Read(spec.Folder)
                       ?? throw new ConfigException($"{spec.File}: the sweep has not been started (no {SweepManifest.PathIn(spec.Folder)})");
        var slurm = LiveTasks(manifest);
        foreach (var (id, st) in Accounting(manifest)) slurm.TryAdd(id, st);
        var total = Config.ConfigLoader.Load(spec.BaseConfig).Algorithm.Iterations;
        return manifest.Runs.Select(r =>
        {
            var iterations = r.Sets.Where(s => s.StartsWith("algorithm.iterations=", StringComparison.Ordinal))
                .Select(s => long.Parse(s["algorithm.iterations=".Length..], CultureInfo.InvariantCulture)).LastOrDefault(total);
            var row = RunFolder.TryRead(r.Dir);
            var result = row?.Eval is { } e ? $"{e.Mean.ToString("0.0000", CultureInfo.InvariantCulture)} ± {e.Ci95.ToString("0.0000", CultureInfo.InvariantCulture)}" : null;
            return new RunStatus(r.Name, r.State, r.JobId, r.JobId != null && slurm.TryGetValue(r.JobId, out var st) ? st : null,
                row?.Metrics.LastOrDefault()?.Iteration, iterations, result);
        }).ToList();
    }

    // squeue lists pending and running array tasks one per line with -r ("JOBID_TASK STATE").
    private static Dictionary<string, string> LiveTasks(SweepManifest manifest)
    {
        var states = new Dictionary<string, string>();
        if (manifest.SlurmJobs.Count == 0) return states;
        var (code, output, _) = Tool("squeue", ["-h", "-r", "-j", string.Join(",", manifest.SlurmJobs), "-o", "%i %T"]);
        if (code != 0) return states;
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            if (line.Split(' ', 2) is [var id, var st]) states[id] = st;
        return states;
    }

    // sacct only answers where the cluster keeps accounting; without it the tasks that left the
    // queue are known from the manifest and run folders alone.
    private static Dictionary<string, string> Accounting(SweepManifest manifest)
    {
        var states = new Dictionary<string, string>();
        if (manifest.SlurmJobs.Count == 0) return states;
        var (code, output, _) = Tool("sacct", ["-n", "-P", "-X", "-j", string.Join(",", manifest.SlurmJobs), "-o", "JobID,State"]);
        if (code != 0) return states;
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            if (line.Split('|') is [var id, var st, ..]) states[id] = st;
        return states;
    }

    private static (int Code, string Out, string Err) Tool(string name, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(name) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(info)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, stdout.Result, stderr);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            if (name == "sbatch") throw new MetaRunException(10 /* setup */, "sbatch not found: is Slurm installed on this machine (scripts/slurm-local.sh starts a local one)?");
            return (127, "", $"{name} not found");
        }
    }

    // "0-3,5,7-8": compact array ranges so a large sweep's #SBATCH line stays short.
    private static string Ranges(IReadOnlyList<int> indexes)
    {
        var parts = new List<string>();
        var sorted = indexes.Order().ToList();
        for (var i = 0; i < sorted.Count;)
        {
            var j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(i == j ? $"{sorted[i]}" : $"{sorted[i]}-{sorted[j]}");
            i = j + 1;
        }
        return string.Join(",", parts);
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";
}
