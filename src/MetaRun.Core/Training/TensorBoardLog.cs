using System.Globalization;
using System.Text;
using MetaRun.Config;
using MetaRun.Evaluation;

namespace MetaRun.Training;

/// <summary>
/// What a run shows in TensorBoard (`tensorboard --logdir runs/`): every metrics row as scalars
/// as it is written — train/loss and train/accuracy (train/mse for regression), val/loss,
/// val/accuracy or val/mse and val/ci95, lr/outer (the scheduled rate), traced/NAME for a
/// learner's learned rates, time/seconds_per_iteration (the outer step alone, without validation
/// and checkpoints) — the run's key settings and config.yaml as text, and each evaluation
/// `metarun eval` keeps, under eval/. Off with output.tensorboard: false.
/// </summary>
public sealed class TensorBoardLog : IDisposable
{
    private readonly EventFile file;
    private readonly RunConfig config;
    private readonly IReadOnlyList<string> traced;
    private readonly bool regression;

    private TensorBoardLog(EventFile file, RunConfig config, IReadOnlyList<string> traced)
    {
        (this.file, this.config, this.traced, regression) = (file, config, traced, config.Data.IsRegression);
    }

    /// <summary>The run's event file for this training process, or null when the config turns it off.</summary>
    public static TensorBoardLog? Open(RunDirectory run, RunConfig config, long start, IReadOnlyList<string>? traced)
    {
        if (!config.Output.Tensorboard) return null;
        var log = new TensorBoardLog(new EventFile(run.Path, "train"), config, traced ?? []);
        if (start > 0) log.file.Restart(start + 1);
        log.file.Text(start, "settings", Settings(config));
        log.file.Text(start, "config", "    " + ConfigLoader.ToYaml(config).TrimEnd().Replace("\n", "\n    "));
        return log;
    }

    /// <summary>One metrics row, with the seconds its outer step took.</summary>
    public void Write(MetricsRow row, double stepSeconds)
    {
        var headline = regression ? "mse" : "accuracy";
        var values = new List<(string, double)>
        {
            ("train/loss", row.TrainLoss),
            ("lr/outer", MetaIteration.ScheduledLr(config.Algorithm, row.Iteration)),
            ("time/seconds_per_iteration", stepSeconds),
        };
        if (!regression) values.Add(("train/accuracy", row.TrainAccuracy));
        if (row.ValLoss is { } vl) values.Add(("val/loss", vl));
        if (!regression && row.ValAccuracy is { } va) values.Add(("val/accuracy", va));
        if (regression && row.ValLoss is { } vm) values.Add(("val/mse", vm));
        if (row.ValCi95 is { } ci) values.Add(($"val/{headline}_ci95", ci));
        var t = row.Traced ?? [];
        for (var i = 0; i < traced.Count && i < t.Count; i++) values.Add(($"traced/{traced[i]}", t[i]));
        file.Scalars(row.Iteration, values);
    }

    /// <summary>
    /// An evaluation kept in the run's store, as eval/LABEL/METRIC and its ci95 at the checkpoint's
    /// iteration, in an event file of its own (eval runs as another process than train). A run
    /// folder that cannot be read or written only loses the TensorBoard copy, with a warning.
    /// </summary>
    public static void TryEvaluation(string runDir, EvaluationResult result, Action<string>? warn)
    {
        try
        {
            var configPath = RunDirectory.At(runDir).ConfigPath;
            if (!File.Exists(configPath) || !ConfigLoader.Load(configPath, []).Output.Tensorboard) return;
            using var file = new EventFile(runDir, "eval");
            var label = Label(result);
            List<(string, double)> values = [($"eval/{label}/{result.Metric.Name}", result.Summary.Mean), ($"eval/{label}/{result.Metric.Name}_ci95", result.Summary.Ci95)];
            if (result.Attacked is { } a) values.AddRange([($"eval/{label}/{result.Metric.Name}_attacked", a.Mean), ($"eval/{label}/{result.Metric.Name}_attacked_ci95", a.Ci95)]);
            file.Scalars(result.Iteration, values);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or MetaRunException)
        {
            warn?.Invoke($"{runDir}: the evaluation was not added to the TensorBoard log ({e.Message})");
        }
    }

    /// <summary>What makes the evaluation distinct, as one tag component: test_best_5w1s_10steps, val_last_K10_5steps_fgsm-0.1.</summary>
    public static string Label(EvaluationResult r)
    {
        var parts = new List<string> { r.Split, Path.GetFileNameWithoutExtension(r.Checkpoint), r.Regression ? $"K{r.Shape.Shots}" : $"{r.Shape.Ways}w{r.Shape.Shots}s", $"{r.InnerSteps}steps" };
        if (r.Attack != null) parts.Add($"{r.Attack.Name}-{r.Attack.Epsilon.ToString("0.###", CultureInfo.InvariantCulture)}");
        if (r.Variant != null) parts.Add(r.Variant);
        return string.Join("_", parts);
    }

    private static string Settings(RunConfig c)
    {
        var a = c.Algorithm;
        var rows = new List<(string, string)>
        {
            ("algorithm", a.Name), ("dataset", c.Data.Dataset.Yaml()), ("model", c.Model.Name.Yaml()),
            ("train episodes", c.Data.Dataset.EpisodeText(c.Data.Train.Ways, c.Data.Train.Shots, c.Algorithm.Trajectories)),
            ("inner lr", a.InnerLr.ToString(CultureInfo.InvariantCulture)), ("inner steps", a.InnerSteps.ToString(CultureInfo.InvariantCulture)),
            ("outer lr", a.OuterLr.ToString(CultureInfo.InvariantCulture)), ("meta-batch", a.MetaBatchSize.ToString(CultureInfo.InvariantCulture)),
            ("iterations", a.Iterations.ToString(CultureInfo.InvariantCulture)), ("seed", c.Seed.ToString(CultureInfo.InvariantCulture)),
        };
        var b = new StringBuilder("| setting | value |\n| --- | --- |\n");
        foreach (var (k, v) in rows) b.Append(CultureInfo.InvariantCulture, $"| {k} | {v} |\n");
        return b.ToString();
    }

    public void Dispose() => file.Dispose();
}
