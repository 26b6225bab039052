using System.Text.Json;
using System.Text.Json.Serialization;

namespace MetaRun.Sweeps;

/// <summary>The states a sweep's run goes through.</summary>
public static class RunState
{
    public const string Pending = "pending";
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Done = "done";
    public const string Failed = "failed";
    public const string Interrupted = "interrupted";
}

public sealed class ManifestRun
{
    public int Index { get; set; }
    public int Combination { get; set; }
    public string Name { get; set; } = "";
    public string Dir { get; set; } = "";
    public long Seed { get; set; }
    public List<string> Sets { get; set; } = [];
    public Dictionary<string, string> Varying { get; set; } = [];
    public string State { get; set; } = RunState.Pending;
    /// <summary>How many times train was started from scratch (1 for a healthy run, whatever was resumed).</summary>
    public int Starts { get; set; }
    public int Resumes { get; set; }
    public int? ExitCode { get; set; }
    public string? Failure { get; set; }
    /// <summary>Process id of the run's current child (train or eval) while running.</summary>
    public int? Pid { get; set; }
    public string? Host { get; set; }
    public string? JobId { get; set; }
    public DateTimeOffset? Started { get; set; }
    public DateTimeOffset? Finished { get; set; }
    public double? Seconds { get; set; }
    /// <summary>Whether train finished (so a changed evaluation re-runs only eval).</summary>
    public bool Trained { get; set; }
    /// <summary>The final evaluation's settings its eval.json was made with (<see cref="SweepChanges.EvalKey"/>).</summary>
    public string? Evaluated { get; set; }
}

/// <summary>
/// sweep.json in the sweep folder: what was asked (the sweep file, base config, every run's
/// overrides) and what state each run is in. Several processes update it (local workers, Slurm
/// array tasks), so every change is a read-modify-write under an exclusive lock file, and the
/// file is replaced atomically so a reader never sees half of it.
/// </summary>
public sealed class SweepManifest
{
    public const string FileName = "sweep.json";
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string Name { get; set; } = "";
    public string SweepFile { get; set; } = "";
    public string BaseConfig { get; set; } = "";
    public List<string> SlurmJobs { get; set; } = [];
    public List<ManifestRun> Runs { get; set; } = [];

    public static string PathIn(string folder) => Path.Combine(folder, FileName);

    public static SweepManifest? Read(string folder)
    {
        var path = PathIn(folder);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<SweepManifest>(File.ReadAllText(path), Json); }
        catch (JsonException e)
        {
            // .NET's own message names CLR types (List`1[ManifestRun]); the user needs the place and the form.
            var where = e.LineNumber is { } line ? $"line {line + 1}, " : "";
            throw new MetaRunException(ExitCodes.Failure,
                $"{path}: unreadable sweep manifest at {where}'{e.Path ?? "$"}': expected the JSON metarun writes (an object whose 'runs' is a list of run objects with numbers, strings and lists of strings); restore it, or delete it to let the sweep rebuild it from the run folders");
        }
    }

    /// <summary>Applies <paramref name="change"/> to the manifest on disk under the folder's lock and writes it back.</summary>
    public static SweepManifest Update(string folder, Action<SweepManifest> change)
    {
        using var gate = Lock(folder);
        var manifest = Read(folder) ?? new SweepManifest();
        change(manifest);
        var path = PathIn(folder);
        var tmp = path + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(manifest, Json) + "\n");
        File.Move(tmp, path, overwrite: true);
        return manifest;
    }

    public static void UpdateRun(string folder, int index, Action<ManifestRun> change) =>
        Update(folder, m => change(m.Runs.Single(r => r.Index == index)));

    // An exclusive open of a lock file; the kernel drops it if the holder dies, so a killed
    // sweep never leaves the folder locked.
    private static FileStream Lock(string folder)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, ".sweep.lock");
        for (var attempt = 0; ; attempt++)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (attempt < 600) { Thread.Sleep(50); }
        }
    }
}
