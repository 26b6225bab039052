using MetaRun.Training;

namespace MetaRun.Evaluation;

/// <summary>
/// Checks, before a command reads or writes anything, that the files it is about to write cannot
/// destroy what it reads or what a run owns: an output that is one of the command's inputs, a file
/// a run folder keeps (its checkpoints, config, log, metrics), or the same file as another output
/// is refused with exit 2 naming both paths. Paths are compared after following symbolic links.
/// </summary>
public static class OutputGuard
{
    /// <summary>The files at a run folder's top that training writes and resume reads.</summary>
    private static readonly string[] RunFiles = ["config.yaml", "train.log", "metrics.jsonl", "metrics.csv", "curves.png", ".lock", ".owner"];

    /// <param name="outputs">Each output as its option and path (e.g. ("--out", "x.json")).</param>
    /// <param name="inputs">Each file the command reads, as its option and path.</param>
    /// <param name="inputFolders">Folders the command reads every file of (adapt's support and query images).</param>
    public static void Check(IReadOnlyList<(string Option, string Path)> outputs, IReadOnlyList<(string Option, string Path)> inputs, IReadOnlyList<(string Option, string Path)>? inputFolders = null)
    {
        var seen = new List<(string Option, string Path, string Canonical)>();
        foreach (var (option, path) in outputs)
        {
            if (Directory.Exists(path))
                throw new ConfigException($"{option} {path}: is a folder; name the file to write (e.g. {System.IO.Path.Combine(path, DefaultName(option))})");
            var canonical = Canonical(path);
            foreach (var (inOption, inPath) in inputs)
                if (Canonical(inPath) == canonical)
                    throw new ConfigException($"{option} {path} is the same file as {inOption} {inPath}, which this command reads; writing it would destroy it: choose another {option}");
            foreach (var (inOption, inPath) in inputFolders ?? [])
                if (canonical.StartsWith(Canonical(inPath) + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal))
                    throw new ConfigException($"{option} {path} is inside {inOption} {inPath}, whose images this command reads; write it elsewhere");
            foreach (var other in seen)
                if (other.Canonical == canonical)
                    throw new ConfigException($"{option} {path} and {other.Option} {other.Path} are the same file; each output needs its own file");
            if (RunFileOf(canonical) is { } run)
                throw new ConfigException($"{option} {path}: is a file of the run folder {run}, which training, resume and compare read; write it elsewhere (e.g. beside the run folder)");
            seen.Add((option, path, canonical));
        }
    }

    private static string DefaultName(string option) => option == "--save-adapted" ? "adapted.safetensors" : "result.json";

    /// <summary>The run folder when <paramref name="canonical"/> is one of its own files (its eval.json, meant to be rewritten, is not).</summary>
    private static string? RunFileOf(string canonical)
    {
        var dir = System.IO.Path.GetDirectoryName(canonical);
        if (dir == null) return null;
        var name = System.IO.Path.GetFileName(canonical);
        if (IsRunFolder(dir) && (RunFiles.Contains(name) || name.StartsWith("train.rank", StringComparison.Ordinal)))
            return dir;
        // Inside checkpoints/: every safetensors file (and its .tmp while it is being written) is a checkpoint.
        if (System.IO.Path.GetFileName(dir) == "checkpoints" && System.IO.Path.GetDirectoryName(dir) is { } runDir &&
            (IsRunFolder(runDir) || name.EndsWith(".safetensors", StringComparison.Ordinal) || name.EndsWith(".safetensors.tmp", StringComparison.Ordinal)) &&
            name != Evaluator.ResultFile)
            return runDir;
        return null;
    }

    private static bool IsRunFolder(string dir)
    {
        var run = RunDirectory.At(dir);
        return File.Exists(run.ConfigPath) && (Directory.Exists(run.CheckpointDir) || File.Exists(run.LogPath) || File.Exists(run.MetricsCsvPath));
    }

    /// <summary>The absolute path with every symbolic link along it followed (the parts that exist).</summary>
    public static string Canonical(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        var root = System.IO.Path.GetPathRoot(full)!;
        var current = root;
        foreach (var part in full[root.Length..].Split(System.IO.Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = System.IO.Path.Combine(current, part);
            try
            {
                FileSystemInfo info = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
                if (info.LinkTarget != null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target)
                    current = System.IO.Path.GetFullPath(target.FullName);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return current;
    }
}
