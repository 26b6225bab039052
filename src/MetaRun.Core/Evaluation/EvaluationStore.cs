using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MetaRun.Evaluation;

/// <summary>One evaluation as the store keeps it: what was evaluated, and the result.</summary>
/// <param name="CheckpointName">"best", "last", or another checkpoint's file name without extension.</param>
/// <param name="Attack">The attack's label ("fgsm ε=0.1", "pgd ε=0.1 10 steps"), null for a clean evaluation.</param>
public sealed record StoredEvaluation(
    string File, string CheckpointName, string Split, int Episodes, int Ways, int Shots, int Queries, int InnerSteps, double InnerLr, long Seed,
    string? Attack, string Metric, double? Mean, double? Ci95, double? AttackedMean, double? AttackedCi95, long Iteration, DateTimeOffset Recorded)
{
    /// <summary>The headline number of this evaluation: under attack, the attacked score; otherwise the clean one.</summary>
    public double? Value => Attack == null ? Mean : AttackedMean;
    public double? ValueCi95 => Attack == null ? Ci95 : AttackedCi95;

    /// <summary>A classification evaluation's query NLL, pooled ECE and Brier score (null where it has none: regression, under attack, or recorded before calibration was).</summary>
    public double? Nll { get; init; }
    public double? Ece { get; init; }
    public double? Brier { get; init; }
    /// <summary>The pooled reliability histogram behind <see cref="Ece"/>.</summary>
    public ReliabilityBins? Reliability { get; init; }
    /// <summary>`eval --ood`'s AUROC of predictive entropy and of top probability at telling out-of-episode queries apart.</summary>
    public double? OodAurocEntropy { get; init; }
    public double? OodAurocMaxProbability { get; init; }
    /// <summary>A regression evaluation's Gaussian NLL and 90%-interval coverage, for a learner with predictive intervals.</summary>
    public double? GaussianNll { get; init; }
    public double? Coverage90 { get; init; }
    /// <summary>What the record is beside the plain evaluation ("ood", "inner-steps"), null for the plain one (<see cref="EvaluationResult.Variant"/>).</summary>
    public string? Variant { get; init; }
}

/// <summary>
/// Every evaluation of a run, each its own record: a file per distinct evaluation (checkpoint and
/// its iteration, split, episodes, episode shape, inner steps and rate, attack, seed) in the run
/// folder's evaluations/, so a validation or attacked evaluation never replaces the clean test
/// result. Re-running the same evaluation replaces its own record only. `compare`, `report` and
/// `sweep` choose from these by rule (<see cref="Reports.RunFolder"/>).
/// </summary>
public static class EvaluationStore
{
    public const string FolderName = "evaluations";

    /// <summary>The variant record of `eval --ood`: the evaluation with its out-of-distribution figures, kept beside the plain record of the same episodes.</summary>
    public const string OodVariant = "ood";

    /// <summary>
    /// Where a checkpoint's evaluations are kept: RUN/evaluations for a checkpoint in a run
    /// folder's checkpoints/, else an evaluations/ folder beside the checkpoint.
    /// </summary>
    public static string FolderFor(string checkpointFile)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(checkpointFile))!;
        // The run folder's layout is RunDirectory's to name.
        var run = Path.GetDirectoryName(dir) is { } parent ? Training.RunDirectory.At(parent) : null;
        var inRun = run != null && Path.GetFullPath(run.CheckpointDir) == dir && File.Exists(run.ConfigPath);
        return Path.Combine(inRun ? run!.Path : dir, FolderName);
    }

    /// <summary>
    /// Stores an evaluation: one with out-of-distribution figures as two records, the plain one
    /// (which a later plain `eval` of the same episodes replaces) and its own <see cref="OodVariant"/>
    /// record (which only another `eval --ood` replaces). Returns the plain record's path.
    /// </summary>
    public static string? TrySaveAll(EvaluationResult result, Action<string>? warn)
    {
        if (result.Ood == null || result.Variant != null) return TrySave(result, warn);
        var plain = TrySave(result with { Ood = null }, warn);
        TrySave(result with { Variant = OodVariant }, warn);
        return plain;
    }

    /// <summary>Stores the result; a store that cannot be written is a warning, not a failure: the result is printed and written elsewhere.</summary>
    public static string? TrySave(EvaluationResult result, Action<string>? warn)
    {
        var folder = FolderFor(result.Checkpoint);
        try
        {
            Directory.CreateDirectory(folder);
            var json = result.ToJson();
            json["checkpoint_name"] = CheckpointName(result.Checkpoint);
            json["recorded"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
            var path = Path.Combine(folder, FileName(result));
            // Written whole or not at all: a crash mid-write must not leave a record that cannot be read.
            var tmp = path + ".tmp";
            File.WriteAllText(tmp, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            File.Move(tmp, path, overwrite: true);
            if (Path.GetDirectoryName(folder) is { } runDir) Training.TensorBoardLog.TryEvaluation(runDir, result, warn);
            return path;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warn?.Invoke($"{folder}: cannot keep this evaluation in the run's evaluation store ({e.Message}); compare and report will not see it");
            return null;
        }
    }

    /// <summary>The stored evaluations of a run folder (or of a checkpoint's folder), oldest first; unreadable records are skipped with a warning.</summary>
    public static IReadOnlyList<StoredEvaluation> Read(string runDir, Action<string>? warn = null)
    {
        var folder = Path.Combine(runDir, FolderName);
        if (!Directory.Exists(folder)) return [];
        var records = new List<StoredEvaluation>();
        foreach (var file in Directory.EnumerateFiles(folder, "*.json").Order(StringComparer.Ordinal))
        {
            try
            {
                records.Add(Parse(file, File.ReadAllText(file)));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or IOException)
            {
                warn?.Invoke($"{file}: unreadable evaluation record, left out ({e.Message.Split('\n')[0]})");
            }
        }
        return [.. records.OrderBy(r => r.Recorded)];
    }

    /// <summary>A record read back; eval.json files written before the store existed read the same way.</summary>
    public static StoredEvaluation Parse(string file, string text)
    {
        using var doc = JsonDocument.Parse(text);
        var r = doc.RootElement;
        double? D(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        string? attack = null;
        double? attackedMean = null, attackedCi = null;
        if (r.TryGetProperty("attack", out var a) && a.ValueKind == JsonValueKind.Object)
        {
            attack = AttackLabel(a.GetProperty("kind").GetString()!, a.GetProperty("epsilon").GetDouble(), a.TryGetProperty("steps", out var st) ? st.GetInt32() : 1);
            (attackedMean, attackedCi) = (D(a, "mean"), D(a, "ci95"));
        }
        var checkpoint = r.GetProperty("checkpoint").GetString()!;
        var calibration = r.TryGetProperty("calibration", out var cal) && cal.ValueKind == JsonValueKind.Object ? cal : (JsonElement?)null;
        var ood = r.TryGetProperty("ood", out var o) && o.ValueKind == JsonValueKind.Object ? o : (JsonElement?)null;
        var intervals = r.TryGetProperty("intervals", out var iv) && iv.ValueKind == JsonValueKind.Object ? iv : (JsonElement?)null;
        return new StoredEvaluation(
            file,
            r.TryGetProperty("checkpoint_name", out var cn) ? cn.GetString()! : CheckpointName(checkpoint),
            r.GetProperty("split").GetString()!,
            r.GetProperty("episodes").GetInt32(),
            r.GetProperty("ways").GetInt32(), r.GetProperty("shots").GetInt32(), r.GetProperty("queries").GetInt32(),
            r.TryGetProperty("inner_steps", out var s) ? s.GetInt32() : 0,
            D(r, "inner_lr") ?? double.NaN,
            r.TryGetProperty("seed", out var seed) ? seed.GetInt64() : 0,
            attack,
            r.GetProperty("metric").GetString()!,
            D(r, "mean"), D(r, "ci95"), attackedMean, attackedCi,
            r.GetProperty("iteration").GetInt64(),
            r.TryGetProperty("recorded", out var rec) && DateTimeOffset.TryParse(rec.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : System.IO.File.GetLastWriteTimeUtc(file))
        {
            Nll = calibration is { } c1 ? D(c1, "nll") : null,
            Ece = calibration is { } c2 ? D(c2, "ece") : null,
            Brier = calibration is { } c3 ? D(c3, "brier") : null,
            Reliability = calibration is { } c4 && c4.TryGetProperty("reliability", out var bins) && bins.ValueKind == JsonValueKind.Array
                ? ReliabilityBins.FromJson(System.Text.Json.Nodes.JsonNode.Parse(bins.GetRawText())!.AsArray()) : null,
            OodAurocEntropy = ood is { } o1 ? D(o1, "auroc_entropy") : null,
            OodAurocMaxProbability = ood is { } o2 ? D(o2, "auroc_max_probability") : null,
            GaussianNll = intervals is { } i1 ? D(i1, "gaussian_nll") : null,
            Coverage90 = intervals is { } i2 ? D(i2, "coverage90") : null,
            Variant = r.TryGetProperty("variant", out var variant) && variant.ValueKind == JsonValueKind.String ? variant.GetString() : null,
        };
    }

    public static string AttackLabel(string kind, double epsilon, int steps) =>
        kind == "pgd" ? $"pgd ε={epsilon.ToString("0.###", CultureInfo.InvariantCulture)} {steps} steps" : $"{kind} ε={epsilon.ToString("0.###", CultureInfo.InvariantCulture)}";

    private static string CheckpointName(string checkpointFile) => Path.GetFileNameWithoutExtension(checkpointFile);

    /// <summary>A readable name that sorts by kind, with a digest of everything that makes the evaluation distinct.</summary>
    private static string FileName(EvaluationResult r)
    {
        var identity = string.Join("\n", Path.GetFullPath(r.Checkpoint), r.Iteration, r.Split, r.Summary.Count, r.Shape.Ways, r.Shape.Shots, r.Shape.Queries,
            r.InnerSteps, r.InnerLr.ToString("R", CultureInfo.InvariantCulture), r.Seed,
            r.Attack == null ? "clean" : $"{r.Attack.Name} {r.Attack.Epsilon.ToString("R", CultureInfo.InvariantCulture)} {r.Attack.Steps}");
        // A plain record's identity is as it was before variants existed, so re-running an evaluation still replaces its old record.
        if (r.Variant != null) identity += "\n" + r.Variant;
        var digest = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..8].ToLowerInvariant();
        var attack = r.Attack == null ? "" : $"-{r.Attack.Name}";
        var variant = r.Variant == null ? "" : $"-{r.Variant}";
        return $"{r.Split}-{CheckpointName(r.Checkpoint)}-{r.Shape.Ways}w{r.Shape.Shots}s{r.Shape.Queries}q-{r.Summary.Count}ep{attack}{variant}-{digest}.json";
    }
}
