using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LibTorch;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Training;

/// <summary>
/// How a run was made, kept in its folder as history.jsonl: one line per start, resume and end,
/// each start with the exact command line, MetaRun's version and commit, libtorch and its build,
/// the device, the host, and the data set's identity (path and a fingerprint of its files).
/// </summary>
public static class Provenance
{
    public const string FileName = "history.jsonl";

    /// <summary>MetaRun's version, and the commit it was built from with "-dirty" when tracked files had changes (null outside git).</summary>
    public static (string Version, string? Commit) Build()
    {
        var assembly = typeof(Provenance).Assembly;
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        var plus = informational.IndexOf('+');
        var version = plus > 0 ? informational[..plus] : informational;
        var commit = plus > 0 ? informational[(plus + 1)..] : null;
        var dirty = assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "SourceTreeDirty")?.Value == "true";
        return (version, commit == null ? null : dirty ? commit + "-dirty" : commit);
    }

    /// <summary>A start or a resume: everything that says how this part of the run was made.</summary>
    public static void Started(RunDirectory run, string kind, Experiment experiment, string? dataRoot, IReadOnlyList<(string Key, string Was, string Now)> changes)
    {
        var (version, commit) = Build();
        var parallel = experiment.Parallel;
        var entry = new JsonObject
        {
            ["event"] = kind,
            ["time"] = Now(),
            ["command"] = ShellCommand.Current,
            ["cwd"] = Environment.CurrentDirectory,
            ["metarun"] = version,
            ["commit"] = commit,
            ["libtorch"] = Torch.LibTorchVersion,
            ["libtorch_build"] = Torch.CudaBuilt ? "CUDA" : "CPU",
            ["device"] = experiment.Device.ToString(),
            ["processes"] = parallel?.WorldSize ?? 1,
            ["workers"] = experiment.Workers,
            ["threads"] = Torch.Threads,
            ["host"] = Environment.MachineName,
            ["data"] = DataIdentity(experiment.Config.Data, dataRoot),
        };
        if (changes.Count > 0)
            entry["changes"] = new JsonObject([.. changes.Select(c => KeyValuePair.Create(c.Key, (JsonNode?)new JsonArray(c.Was, c.Now)))]);
        Append(run, entry);
    }

    /// <summary>The end of this part of the run: "finished", "stopped" (a signal; resumable) or "failed" with the reason.</summary>
    public static void Ended(RunDirectory run, string how, long? iteration, string? reason = null)
    {
        var entry = new JsonObject { ["event"] = how, ["time"] = Now(), ["iteration"] = iteration };
        if (reason != null) entry["reason"] = reason;
        Append(run, entry);
    }

    private static string Now() => DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    private static void Append(RunDirectory run, JsonObject entry) =>
        File.AppendAllText(Path.Combine(run.Path, FileName), entry.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");

    /// <summary>
    /// Which data the run read: generated task families have none; for the others the folder and a
    /// fingerprint of its files (names and sizes, and the contents of archives up to 256 MB), so two
    /// runs can tell whether they read the same data.
    /// </summary>
    public static JsonObject DataIdentity(DataConfig data, string? dataRoot)
    {
        var identity = new JsonObject { ["dataset"] = data.Dataset.Yaml() };
        if (data.IsRegression) return identity;
        string dir;
        if (data.Dataset is Dataset.Folder or Dataset.Features)
        {
            if (data.Root == null) return identity;
            dir = Path.GetFullPath(DataRoot.Resolve(null, data.Root));
        }
        else
        {
            dir = Path.Combine(DataRoot.Resolve(dataRoot, data.Root), data.Dataset.Yaml());
        }
        identity["path"] = dir;
        if (File.Exists(dir))
        {
            // A features file: its content is the data.
            using var stream = File.OpenRead(dir);
            identity["files"] = 1;
            identity["fingerprint"] = Convert.ToHexString(SHA256.HashData(stream))[..16].ToLowerInvariant();
            return identity;
        }
        if (!Directory.Exists(dir)) return identity;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = Directory.EnumerateFiles(dir, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true })
            .Select(f => (Relative: Path.GetRelativePath(dir, f), Info: new FileInfo(f))).OrderBy(f => f.Relative, StringComparer.Ordinal).ToList();
        foreach (var (relative, info) in files)
        {
            sha.AppendData(Encoding.UTF8.GetBytes($"{relative}\n{info.Length}\n"));
            if (IsArchive(relative) && info.Length <= 256L << 20)
            {
                using var stream = info.OpenRead();
                sha.AppendData(SHA256.HashData(stream));
            }
        }
        identity["files"] = files.Count;
        identity["fingerprint"] = Convert.ToHexString(sha.GetHashAndReset())[..16].ToLowerInvariant();
        return identity;
    }

    private static bool IsArchive(string name) => name.EndsWith(".zip", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".tar", StringComparison.OrdinalIgnoreCase)
        || name.EndsWith(".tar.gz", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".pkl", StringComparison.OrdinalIgnoreCase);
}
