using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Reports;
using MetaRun.Training;

namespace MetaRun.Evaluation;

/// <summary>
/// Finn et al.'s (2017) Figures 2 and 3 for a checkpoint of a gradient-based learner: the same
/// test episodes scored after 0, 1, … inner steps (each step count one evaluation in the run's
/// store, so `report` draws the curve), and for regression the fits of a few test tasks before
/// and after adaptation (the run's figures/fits.json).
/// </summary>
public static class AdaptationCurve
{
    /// <summary>
    /// The curve's records are a variant of their own: at the trained step count the curve scores
    /// the same episodes as `eval`, and must not replace that record (with its calibration).
    /// </summary>
    public const string Variant = "inner-steps";

    /// <summary>Test tasks drawn in the fits figure, and the query points that trace each task's true function.</summary>
    public const int FitTasks = 3, FitPoints = 200;

    /// <summary>"0..10" or "0,1,5,10" as a sorted list of step counts.</summary>
    public static IReadOnlyList<int> ParseSteps(string text)
    {
        var t = text.Trim();
        var range = t.Split("..");
        IEnumerable<int> steps;
        if (range.Length == 2 && int.TryParse(range[0], NumberStyles.None, CultureInfo.InvariantCulture, out var a) && int.TryParse(range[1], NumberStyles.None, CultureInfo.InvariantCulture, out var b) && a <= b)
            steps = Enumerable.Range(a, b - a + 1);
        else
            steps = t.Split(',').Select(s => int.TryParse(s.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n
                : throw new ConfigException($"--inner-steps {text}: give a range A..B or a list like 0,1,5,10 of step counts (0 or more)"));
        var list = steps.Distinct().Order().ToList();
        if (list.Count == 0 || list[^1] > 10000) throw new ConfigException($"--inner-steps {text}: between 0 and 10000 steps");
        return list;
    }

    /// <summary>Scores episodes 0..episodes−1 of <paramref name="split"/> after each step count, with the checkpoint's inner rate; one result per count.</summary>
    public static IReadOnlyList<EvaluationResult> Run(string checkpointPath, Split split, int episodes, IReadOnlyList<int> steps, IReadOnlyList<string> sets, string? dataRoot, Action<string>? log = null)
    {
        if (episodes < 1) throw new ConfigException("--episodes must be at least 1");
        using var checkpoint = Evaluator.Open(checkpointPath, sets);
        var (file, config) = (checkpoint.FilePath, checkpoint.Config);
        var clock = Stopwatch.StartNew();
        using var experiment = Experiment.Launch(config, dataRoot, $"eval --inner-steps {Path.GetFullPath(file)}", new DataOptions { Log = log, Splits = TaskFamilies.Needs(config, split) });
        if (experiment.Parallel != null) throw new ConfigException("--inner-steps runs in one process; leave out --nproc");
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, file);
        var learner = experiment.Learner as FastWeightLearner
            ?? throw new ConfigException($"--inner-steps: {config.Algorithm.Name} does not adapt by inner gradient steps; the curve is for gradient-based learners (maml, fomaml, anil, metasgd, …)");
        // Scored as eval scores (batched or one by one), so the point at the trained step count is eval's figure to the bit.
        var scores = experiment.Plan.Batched
            ? EpisodeScoring.ForEachRun<TaskScore[]>(experiment.Family, split, 0, episodes, experiment.TestShape, config.Algorithm.MetaBatchSize, experiment.Device, experiment.Workers, experiment.Plan.TasksPerRun,
                run =>
                {
                    var each = steps.Select(k => learner.ScoreEachAfter(run, k)).ToArray();
                    return [.. Enumerable.Range(0, each[0].Length).Select(t => each.Select(s => s[t]).ToArray())];
                })
            : EpisodeScoring.ForEachEpisode(experiment.Family, split, 0, episodes, experiment.TestShape, config.Algorithm.MetaBatchSize, experiment.Device, experiment.Workers,
                (task, _) => steps.Select(k => learner.ScoreAfter(task, k)).ToArray());
        var metric = experiment.Objective.Headline;
        var seconds = clock.Elapsed.TotalSeconds;
        return [.. steps.Select((k, j) => new EvaluationResult(metric, Summary.Of(scores.Select(s => metric.Of(s[j])).ToArray()), split == Split.Val ? "val" : "test",
            experiment.TestShape, experiment.Family.IsRegression, k, config.Algorithm.InnerLr, checkpoint.Iteration, Path.GetFullPath(file), seconds, Seed: config.Seed) { Variant = AdaptationCurve.Variant })];
    }

    /// <summary>
    /// Figure 2 for a regression checkpoint: <see cref="FitTasks"/> test tasks, each its true
    /// function (traced by <see cref="FitPoints"/> query points), its support points, and the
    /// prediction before adaptation and after each of <paramref name="steps"/>; written as a
    /// report figure to RUN/figures/fits.json. Returns where, or null when it is not regression.
    /// </summary>
    public static string? WriteFits(string runDir, string checkpointPath, IReadOnlyList<int> steps, IReadOnlyList<string> sets, string? dataRoot, Action<string>? log = null)
    {
        using var checkpoint = Evaluator.Open(checkpointPath, sets);
        var (file, config) = (checkpoint.FilePath, checkpoint.Config);
        if (!config.Data.IsRegression) return null;
        ConfigLoader.Override(config, [$"data.test.queries={FitPoints}"]);
        using var experiment = Experiment.Launch(config, dataRoot, $"eval --inner-steps fits {Path.GetFullPath(file)}", new DataOptions { Log = log, Splits = TaskFamilies.Needs(config, Split.Test) });
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, file);
        if (experiment.Learner is not FastWeightLearner learner) return null;
        var shown = new[] { 0, 1, steps[^1] }.Where(k => k == 0 || steps.Contains(k)).Distinct().ToList();
        var colours = new[] { "#7f7f7f", "#2ca02c", "#d62728", "#9467bd" };
        var panels = EpisodeScoring.ForEachEpisode(experiment.Family, Split.Test, 0, FitTasks, experiment.TestShape, FitTasks, experiment.Device, 1, (task, index) =>
        {
            var qx = task.QueryX.ToArray<float>();
            var order = Enumerable.Range(0, qx.Length).OrderBy(i => qx[i]).ToArray();
            double[] Sorted(float[] v) => [.. order.Select(i => (double)v[i])];
            var series = new JsonArray
            {
                Series("ground truth", "#000000", Sorted(qx), Sorted(task.QueryY.ToArray<float>()), dash: null),
                Series("support points", "#ff7f0e", [.. task.SupportX.ToArray<float>().Select(v => (double)v)], [.. task.SupportY.ToArray<float>().Select(v => (double)v)], points: true),
            };
            foreach (var (k, c) in shown.Select((k, c) => (k, c)))
                series.Add(Series(k == 0 ? "before adaptation" : $"after {k} step{(k == 1 ? "" : "s")}", colours[c % colours.Length], Sorted(qx), Sorted(learner.PredictAfter(task, k).ToArray<float>()), dash: k == 0 ? [6, 4] : null));
            return new JsonObject { ["title"] = $"test task {index}", ["series"] = series };
        });
        var run = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir)));
        var figure = new JsonObject
        {
            ["id"] = $"fits-{run}",
            ["title"] = $"{config.Algorithm.Name}: fits of {FitTasks} test tasks before and after adaptation ({run})",
            ["caption"] = $"K={config.Data.Test.Shots} support points, inner rate {config.Algorithm.InnerLr.ToString(CultureInfo.InvariantCulture)}, checkpoint iteration {checkpoint.Iteration}. Finn et al. (2017), Figure 2.",
            ["xLabel"] = "x",
            ["yLabel"] = "y",
            ["panels"] = new JsonArray([.. panels.Select(p => (JsonNode)p)]),
        };
        var folder = Path.Combine(runDir, Figures.Folder);
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, Figures.FitsFile);
        File.WriteAllText(path + ".tmp", figure.ToJsonString() + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
        return path;
    }

    private static JsonObject Series(string label, string colour, double[] x, double[] y, int[]? dash = null, bool points = false) => new()
    {
        ["label"] = label,
        ["colour"] = colour,
        ["x"] = new JsonArray([.. x.Select(v => (JsonNode)JsonValue.Create(Math.Round(v, 5)))]),
        ["y"] = new JsonArray([.. y.Select(v => (JsonNode)JsonValue.Create(Math.Round(v, 5)))]),
        ["dash"] = dash == null ? null : new JsonArray([.. dash.Select(d => (JsonNode)JsonValue.Create(d))]),
        ["points"] = points,
    };
}
