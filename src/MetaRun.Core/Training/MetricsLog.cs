using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MetaRun.Training;

/// <summary>One row of a run's metrics: training metrics every iteration, validation ones when measured.</summary>
/// <param name="Traced">The learner's traced hyperparameters after this step (<see cref="Algorithms.ITracesHyperparameters"/>), in the log's column order.</param>
public sealed record MetricsRow(long Iteration, double TrainLoss, double TrainAccuracy, double Seconds, double? ValLoss = null, double? ValAccuracy = null, double? ValCi95 = null,
    IReadOnlyList<double>? Traced = null);

/// <summary>
/// Appends metrics to metrics.jsonl and metrics.csv in a run folder. On resume, rows past the
/// checkpoint's iteration (written after it by the interrupted run) are dropped first, so the
/// files read as if the run had never stopped. A learner that traces hyperparameters (Alpha
/// MAML's rates) gets a column each after the standard ones.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    private const string StandardHeader = "iteration,train_loss,train_accuracy,val_loss,val_accuracy,val_ci95,seconds";
    private readonly StreamWriter jsonl;
    private readonly StreamWriter csv;
    private readonly IReadOnlyList<string> traced;

    public MetricsLog(RunDirectory run, long keepUpTo, IReadOnlyList<string>? traced = null)
    {
        this.traced = traced ?? [];
        var header = string.Join(',', [StandardHeader, .. this.traced]);
        var (jsonPath, csvPath) = (run.MetricsJsonlPath, run.MetricsCsvPath);
        Truncate(jsonPath, line => IterationOfJson(line) <= keepUpTo, null);
        Truncate(csvPath, line => IterationOfCsv(line) <= keepUpTo, header);
        jsonl = new StreamWriter(jsonPath, append: true) { AutoFlush = false };
        csv = new StreamWriter(csvPath, append: true) { AutoFlush = false };
        if (new FileInfo(csvPath).Length == 0) csv.WriteLine(header);
    }

    public void Write(MetricsRow r)
    {
        var inv = CultureInfo.InvariantCulture;
        var o = new JsonObject { ["iteration"] = r.Iteration, ["train_loss"] = Num(r.TrainLoss), ["train_accuracy"] = Num(r.TrainAccuracy) };
        if (r.ValLoss is { } vl) o["val_loss"] = Num(vl);
        if (r.ValAccuracy is { } va) o["val_accuracy"] = Num(va);
        if (r.ValCi95 is { } ci) o["val_ci95"] = Num(ci);
        o["seconds"] = Math.Round(r.Seconds, 3);
        var values = r.Traced ?? [];
        for (var i = 0; i < traced.Count && i < values.Count; i++) o[traced[i]] = Num(values[i]);
        jsonl.WriteLine(o.ToJsonString());
        string F(double? v) => v is { } x && double.IsFinite(x) ? x.ToString("R", inv) : "";
        var extra = string.Concat(traced.Select((_, i) => "," + F(i < values.Count ? values[i] : null)));
        csv.WriteLine($"{r.Iteration},{F(r.TrainLoss)},{F(r.TrainAccuracy)},{F(r.ValLoss)},{F(r.ValAccuracy)},{F(r.ValCi95)},{r.Seconds.ToString("0.###", inv)}{extra}");
    }

    public void Flush()
    {
        jsonl.Flush();
        csv.Flush();
    }

    private static JsonNode? Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    private static long IterationOfJson(string line)
    {
        try { return JsonNode.Parse(line)?["iteration"]?.GetValue<long>() ?? long.MaxValue; }
        catch (JsonException) { return long.MaxValue; }
    }

    private static long IterationOfCsv(string line)
    {
        var comma = line.IndexOf(',');
        return comma > 0 && long.TryParse(line.AsSpan(0, comma), NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : long.MaxValue;
    }

    private static void Truncate(string path, Func<string, bool> keep, string? header)
    {
        if (!File.Exists(path)) return;
        var lines = File.ReadAllLines(path);
        var kept = lines.Where((l, i) => (header != null && i == 0 && l == header) || (l.Length > 0 && keep(l))).ToArray();
        if (kept.Length != lines.Length) File.WriteAllLines(path, kept);
    }

    public void Dispose()
    {
        jsonl.Dispose();
        csv.Dispose();
    }
}
