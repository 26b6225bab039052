using MetaRun.Config;
using System.Collections.Concurrent;
using System.Diagnostics;
using MetaRun.Training;

namespace MetaRun.Sweeps;

/// <summary>How to start the metarun CLI as a child process (the sweep runs every run through it).</summary>
public sealed record CliInvocation(string FileName, IReadOnlyList<string> Prefix)
{
    /// <summary>The CLI in <paramref name="dll"/> under the dotnet host that runs this process (or the one on PATH).</summary>
    public static CliInvocation ForAssembly(string dll)
    {
        var host = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        return new CliInvocation(host, [dll]);
    }
}

/// <summary>Counts shown while a local sweep runs.</summary>
public sealed record SweepProgress(int Total, int Done, int Running, int Failed, TimeSpan? Eta, string? Event);

/// <summary>A run that did not finish, with the end of its console log.</summary>
public sealed record SweepFailure(string Name, int Combination, int? ExitCode, string LogTail);

public sealed record SweepOutcome(int Total, int Skipped, int Done, IReadOnlyList<SweepFailure> Failures, bool Interrupted);

/// <summary>
/// Runs a sweep's runs as ordinary `metarun train` (then `metarun eval`) child processes, each in
/// its own run folder under the sweep folder, keeping the manifest's states current. A run that
/// already finished is skipped; one with a checkpoint is continued with --resume.
/// </summary>
public static class SweepRunner
{
    public static string LogsDir(SweepSpec spec) => Path.Combine(spec.Folder, "logs");
    public static string RunLog(SweepSpec spec, string name) => Path.Combine(LogsDir(spec), name + ".log");

    /// <summary>
    /// Brings the manifest in line with the sweep file (new runs are added; a run recorded with
    /// other settings, or no longer asked for, is an error) and returns it.
    /// </summary>
    public static SweepManifest Sync(SweepSpec spec, IReadOnlyList<SweepRun> runs, bool refuseLive, Action<string>? say = null)
    {
        var evalKey = SweepChanges.EvalKey(spec);
        var reevaluate = new List<string>();
        var manifest = SweepManifest.Update(spec.Folder, m =>
        {
            m.Name = spec.Name;
            m.SweepFile = spec.File;
            m.BaseConfig = spec.BaseConfig;
            var byName = m.Runs.ToDictionary(r => r.Name);
            var stale = byName.Keys.Except(runs.Select(r => r.Name)).FirstOrDefault();
            if (stale != null)
                throw new ConfigException($"{spec.File}: the sweep folder {spec.Folder} holds run '{stale}', which the sweep file no longer asks for; use another 'out' folder for a different sweep");
            var list = new List<ManifestRun>();
            foreach (var r in runs)
            {
                if (byName.TryGetValue(r.Name, out var old))
                {
                    if (!old.Sets.SequenceEqual(r.Sets))
                        throw new ConfigException($"{spec.File}: run '{r.Name}' in {SweepManifest.PathIn(spec.Folder)} was asked with --set {string.Join(" ", old.Sets)}, now --set {string.Join(" ", r.Sets)}; use another 'out' folder for a different sweep");
                    if (refuseLive && old.State == RunState.Running && IsAlive(old))
                        throw new MetaRunException(ExitCodes.Failure, $"run '{r.Name}' of sweep {spec.Folder} is still running (process {old.Pid}); wait for it or stop it first");
                    var changed = SweepChanges.ConfigDifferences(old.Dir, ConfigLoader.Load(spec.BaseConfig, r.Sets));
                    if (changed.Count > 0)
                        throw new ConfigException($"{spec.File}: run '{r.Name}' in {spec.Folder} was trained with another config than the sweep now gives it ({string.Join("; ", changed)}): " +
                                                  $"the base config {spec.BaseConfig} or the sweep file changed; runs of two configs in one folder would be compared as one sweep. Use another 'out' folder, or restore the old settings");
                    if (old.State == RunState.Done && old.Evaluated != null && old.Evaluated != evalKey)
                    {
                        // Only the final evaluation changed: the trained run stands, its eval is redone.
                        reevaluate.Add($"{r.Name} ({old.Evaluated} → {evalKey})");
                        old.State = RunState.Interrupted;
                    }
                }
                var entry = old ?? new ManifestRun();
                entry.Index = r.Index;
                entry.Combination = r.Combination;
                entry.Name = r.Name;
                entry.Dir = Path.Combine(spec.Folder, r.Name);
                entry.Seed = r.Seed;
                entry.Sets = [.. r.Sets];
                entry.Varying = r.Varying.ToDictionary();
                // A "done" run whose files are gone, or a "running" one whose process is gone
                // (a killed sweep), is continued from whatever checkpoint it left.
                if (entry.State == RunState.Done && !IsComplete(spec, entry.Dir)) entry.State = RunState.Interrupted;
                if (refuseLive && entry.State == RunState.Running) entry.State = RunState.Interrupted;
                list.Add(entry);
            }
            m.Runs = list;
        });
        if (reevaluate.Count > 0)
            say?.Invoke($"the sweep's evaluation changed: re-running only the evaluation of {reevaluate.Count} finished run(s): {string.Join(", ", reevaluate)}");
        return manifest;
    }

    /// <summary>A run is finished when its last checkpoint and (if asked for) its meta-test result exist.</summary>
    public static bool IsComplete(SweepSpec spec, string dir) =>
        File.Exists(RunDirectory.At(dir).LastCheckpoint) && (spec.EvalEpisodes == 0 || File.Exists(RunDirectory.At(dir).EvalResult));

    public static bool IsFinished(SweepSpec spec, ManifestRun r) => r.State == RunState.Done && IsComplete(spec, r.Dir);

    private static bool IsAlive(ManifestRun r)
    {
        if (r.Pid is not { } pid || r.Host != Environment.MachineName) return false;
        try
        {
            // The pid must still be the run's own child: its command line names the run folder.
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Contains(r.Dir, StringComparison.Ordinal);
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return true; }
    }

    /// <summary>Runs up to <paramref name="parallel"/> runs at a time, the cores divided between them.</summary>
    public static SweepOutcome RunLocal(SweepSpec spec, int parallel, CliInvocation cli, string? dataRoot, IProgress<SweepProgress>? progress, SweepStop stop, Action<string>? say = null)
    {
        if (parallel < 1) throw new ConfigException("--parallel must be at least 1");
        var runs = spec.ExpandAndValidate(stop.Requested);
        var manifest = Sync(spec, runs, refuseLive: true, say);
        var todo = manifest.Runs.Where(r => !IsFinished(spec, r)).OrderBy(r => r.Index).ToList();
        var skipped = runs.Count - todo.Count;
        // Each run sees its share of the cores as the machine's core count, so its default
        // workers × threads fill that share (the config, and with it the checkpoint's hash, is untouched).
        var env = new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = Math.Max(1, Environment.ProcessorCount / parallel).ToString(System.Globalization.CultureInfo.InvariantCulture) };

        var queue = new ConcurrentQueue<ManifestRun>(todo);
        var gate = new object();
        int done = skipped, running = 0, failedCount = 0, finishedHere = 0;
        var clock = Stopwatch.StartNew();
        var failures = new ConcurrentBag<SweepFailure>();
        void Report(string? ev)
        {
            TimeSpan? eta = null;
            var remaining = runs.Count - done - failedCount;
            if (finishedHere > 0 && remaining > 0)
                eta = TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / finishedHere * remaining);
            progress?.Report(new SweepProgress(runs.Count, done, running, failedCount, eta, ev));
        }
        lock (gate) Report(skipped > 0 ? $"{skipped} finished run(s) skipped" : null);

        var workers = Enumerable.Range(0, Math.Min(parallel, Math.Max(1, todo.Count))).Select(_ => Task.Run(() =>
        {
            while (!stop.IsRequested && queue.TryDequeue(out var run))
            {
                lock (gate) { running++; Report($"started {run.Name}"); }
                var ok = RunOne(spec, run.Index, cli, dataRoot, env, null, stop);
                lock (gate)
                {
                    running--;
                    if (stop.IsRequested && !ok) { Report($"interrupted {run.Name}"); continue; }
                    finishedHere++;
                    if (ok) done++;
                    else
                    {
                        failedCount++;
                        var m = SweepManifest.Read(spec.Folder)!.Runs.Single(r => r.Index == run.Index);
                        failures.Add(new SweepFailure(run.Name, run.Combination, m.ExitCode, m.Failure ?? ""));
                    }
                    Report($"{(ok ? "finished" : "FAILED")} {run.Name}");
                }
            }
        })).ToArray();
        Task.WaitAll(workers);
        return new SweepOutcome(runs.Count, skipped, done, [.. failures.OrderBy(f => f.Name)], stop.IsRequested);
    }

    /// <summary>
    /// Trains (or resumes) one run and evaluates it, as child processes; records its state in
    /// the manifest. Returns whether the run finished.
    /// </summary>
    public static bool RunOne(SweepSpec spec, int index, CliInvocation cli, string? dataRoot, IReadOnlyDictionary<string, string> env, string? jobId, SweepStop stop)
    {
        var manifest = SweepManifest.Read(spec.Folder) ?? throw new MetaRunException(ExitCodes.Failure, $"{spec.Folder}: no sweep manifest; run the sweep first");
        var run = manifest.Runs.SingleOrDefault(r => r.Index == index)
                  ?? throw new ConfigException($"{spec.File}: the sweep has no run {index} (it has {manifest.Runs.Count})");
        var dir = run.Dir;
        var folder = RunDirectory.At(dir);
        var resume = File.Exists(folder.LastCheckpoint);
        // Trained already (the sweep's evaluation changed since): evaluate again, train nothing.
        var evalOnly = run.Trained && resume;
        var clock = Stopwatch.StartNew();
        SweepManifest.UpdateRun(spec.Folder, index, r =>
        {
            r.State = RunState.Running;
            r.Started = DateTimeOffset.UtcNow;
            r.Finished = null;
            r.ExitCode = null;
            r.Failure = null;
            r.Host = Environment.MachineName;
            r.JobId = jobId ?? r.JobId;
            if (evalOnly) return;
            r.Trained = false;
            r.Evaluated = null;
            if (resume) r.Resumes++; else r.Starts++;
        });
        Directory.CreateDirectory(LogsDir(spec));
        var logPath = RunLog(spec, run.Name);

        var train = new List<string> { "train", spec.BaseConfig };
        foreach (var s in run.Sets.Append($"name={spec.Name}-{run.Name}")) train.AddRange(["--set", s]);
        train.AddRange(resume ? ["--resume", dir] : ["--out", dir]);
        if (dataRoot != null) train.AddRange(["--data-root", dataRoot]);
        int code;
        if (evalOnly)
        {
            code = 0;
            File.Delete(folder.EvalResult);
        }
        else
        {
            code = Exec(cli, train, env, logPath, spec.Folder, index, stop);
            if (code == 0) SweepManifest.UpdateRun(spec.Folder, index, r => r.Trained = true);
        }

        if (code == 0 && spec.EvalEpisodes > 0)
        {
            var eval = new List<string> { "eval", "--checkpoint", folder.BestOrLast, "--split", spec.EvalSplit, "--episodes", spec.EvalEpisodes.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", folder.EvalResult };
            if (dataRoot != null) eval.AddRange(["--data-root", dataRoot]);
            code = Exec(cli, eval, env, logPath, spec.Folder, index, stop);
        }

        var ok = code == 0 && IsComplete(spec, dir);
        var interrupted = !ok && stop.IsRequested;
        SweepManifest.UpdateRun(spec.Folder, index, r =>
        {
            r.State = ok ? RunState.Done : interrupted ? RunState.Interrupted : RunState.Failed;
            if (ok) r.Evaluated = SweepChanges.EvalKey(spec);
            r.ExitCode = code;
            r.Pid = null;
            r.Finished = DateTimeOffset.UtcNow;
            r.Seconds = Math.Round((r.Seconds ?? 0) + clock.Elapsed.TotalSeconds, 1);
            r.Failure = ok || interrupted ? null : Tail(logPath, 15);
        });
        return ok;
    }

    private static void Kill(Process process)
    {
        try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
    }

    private static void AskToStop(Process process)
    {
        try
        {
            process.StandardInput.WriteLine(SupervisedStop.StopLine);
            process.StandardInput.Close();
        }
        catch (IOException) { }
        catch (InvalidOperationException) { }
    }

    /// <summary>
    /// A child killed mid-save leaves its checkpoint's .tmp; the previous checkpoint is intact, so
    /// the partial file is only clutter (and would be mistaken for a result).
    /// </summary>
    private static void RemovePartialCheckpoints(IEnumerable<string> args)
    {
        var list = args.ToList();
        var at = Math.Max(list.IndexOf("--out"), list.IndexOf("--resume"));
        if (list[0] != "train" || at < 0 || at + 1 >= list.Count) return;
        var dir = RunDirectory.At(list[at + 1]).CheckpointDir;
        if (!Directory.Exists(dir)) return;
        foreach (var tmp in Directory.EnumerateFiles(dir, "*.tmp"))
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static int Exec(CliInvocation cli, IEnumerable<string> args, IReadOnlyDictionary<string, string> env, string logPath, string folder, int index, SweepStop stop)
    {
        var info = new ProcessStartInfo(cli.FileName) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in cli.Prefix.Concat(args)) info.ArgumentList.Add(a);
        foreach (var (k, v) in env) info.Environment[k] = v;
        info.Environment[SupervisedStop.Variable] = "1";
        using var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        log.WriteLine($"$ metarun {string.Join(" ", args)}");
        var sink = new object();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (sink) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (sink) log.WriteLine(e.Data); };
        process.Start();
        SweepManifest.UpdateRun(folder, index, r => r.Pid = process.Id);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // The first stop asks the child to finish its step and save (SupervisedStop); the second kills it.
        var saves = args.First() == "train";
        using (stop.Requested.Register(() => { if (saves) AskToStop(process); else Kill(process); }))
        using (stop.Now.Register(() => Kill(process)))
            process.WaitForExit();
        RemovePartialCheckpoints(args);
        lock (sink) log.WriteLine($"[exit code {process.ExitCode}]");
        return process.ExitCode;
    }

    /// <summary>The last <paramref name="lines"/> lines of a log file ("" when there is none).</summary>
    public static string Tail(string path, int lines)
    {
        if (!File.Exists(path)) return "";
        var all = File.ReadAllLines(path);
        return string.Join("\n", all.Skip(Math.Max(0, all.Length - lines)));
    }
}
