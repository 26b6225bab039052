using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Reports;
using MetaRun.Training;

namespace MetaRun.Evaluation;

/// <summary>
/// Andrychowicz et al.'s (2016) Figure 2 for a learned-optimizer checkpoint: the query loss after
/// 0, 1, …, test_inner_steps steps of the learned optimizer on held-out tasks, beside SGD, Adam
/// and RMSprop run from the same initialisation on the same support sets, each at the rate of
/// <see cref="Rates"/> with the lowest final query loss on validation tasks (as the paper tunes
/// its baselines). Written to the run's figures/ as optimizer-curves.json (a report figure),
/// .csv and .png; mean ± 95% CI over the test tasks at every step.
/// </summary>
public static class OptimizerCurves
{
    public const string JsonFile = "optimizer-curves.json", CsvFile = "optimizer-curves.csv", PngFile = "optimizer-curves.png";

    /// <summary>The baselines' learning-rate grid.</summary>
    public static readonly double[] Rates = [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];

    public static readonly string[] Baselines = ["sgd", "adam", "rmsprop"];

    /// <summary>One optimizer's curve: its rate (NaN for the learned one) and the per-step summary.</summary>
    public sealed record Curve(string Label, double Rate, IReadOnlyList<Summary> Steps);

    public sealed record Result(IReadOnlyList<Curve> Curves, int ValTasks, int TestTasks, int Steps, long Iteration, double Seconds, string Json, string Csv, string Png);

    /// <summary>
    /// The query loss at θ_0 … θ_steps of a hand-designed optimizer on the support loss, from the
    /// learner's initial θ: sgd (θ ← θ − η∇) and adam (β = 0.9, 0.999, ε = 1e-8) are libtorch's;
    /// rmsprop (v ← 0.99 v + 0.01 ∇², θ ← θ − η∇/(√v + 1e-8), PyTorch's defaults) is written here
    /// because the binding has no RMSprop.
    /// </summary>
    public static double[] BaselineCurve(LearnedOptimizer learner, Episode task, string kind, double rate, int steps)
    {
        using var scope = Torch.NewScope();
        var theta = learner.InitialTheta(task.SupportX).Clone().DetachFromScope().RequiresGrad_();
        Optimizer? library = kind switch
        {
            "sgd" => new Sgd([theta], rate),
            "adam" => new Adam([theta], rate),
            "rmsprop" => null,
            _ => throw new ArgumentException($"unknown baseline '{kind}'", nameof(kind)),
        };
        Tensor? square = null;
        var curve = new double[steps + 1];
        try
        {
            for (var t = 0; ; t++)
            {
                using var step = Torch.NewScope();
                using (Torch.NoGrad()) curve[t] = learner.LossAt(theta, task.QueryX, task.QueryY).Item();
                if (t == steps) break;
                var grad = learner.SupportGradient(theta, task);
                if (library != null) { library.Step([grad]); continue; }
                using var noGrad = Torch.NoGrad();
                var v = square is null ? grad.Square() * 0.01 : square * 0.99 + grad.Square() * 0.01;
                square?.Dispose();
                square = v.DetachFromScope();
                theta.CopyFrom(theta - grad / (square.Sqrt() + 1e-8) * rate);
            }
        }
        finally
        {
            library?.Dispose();
            square?.Dispose();
            theta.Dispose();
        }
        return curve;
    }

    /// <summary>The query loss at θ_0 … θ_steps of the learned optimizer.</summary>
    public static double[] LearnedCurve(LearnedOptimizer learner, Episode task, int steps)
    {
        using var scope = Torch.NewScope();
        var curve = new List<double>(steps + 1);
        learner.Optimise(task, steps, theta =>
        {
            using var noGrad = Torch.NoGrad();
            using var s = Torch.NewScope();
            curve.Add(learner.LossAt(theta, task.QueryX, task.QueryY).Item());
        });
        return [.. curve];
    }

    /// <summary>Whether a checkpoint's algorithm is a learned optimizer (its eval draws the curves).</summary>
    public static bool Applies(RunConfig config) =>
        AlgorithmRegistry.All.FirstOrDefault(a => a.Name == config.Algorithm.Name)?.Learners.Contains(typeof(LearnedOptimizer)) == true;

    /// <summary>Tunes the baselines on eval.episodes validation tasks, draws every curve on <paramref name="testTasks"/> test tasks, writes them into runDir/figures.</summary>
    public static Result? Write(string runDir, string checkpointPath, int testTasks, IReadOnlyList<string> sets, string? dataRoot, Action<string>? log = null)
    {
        var clock = Stopwatch.StartNew();
        using var checkpoint = Evaluator.Open(checkpointPath, sets);
        var (file, config) = (checkpoint.FilePath, checkpoint.Config);
        if (!Applies(config)) return null;
        var valTasks = config.Eval.Episodes;
        using var experiment = Experiment.Launch(config, dataRoot, $"eval optimizer curves {Path.GetFullPath(file)}", new DataOptions { Log = log, Splits = TaskFamilies.Needs(config, Split.Val, Split.Test) });
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, file);
        var learner = (LearnedOptimizer)experiment.Learner;
        var steps = learner.TestInnerSteps;
        List<T> Each<T>(Split split, int count, Func<Episode, T> f) =>
            EpisodeScoring.ForEachEpisode(experiment.Family, split, 0, count, experiment.TestShape, config.Algorithm.MetaBatchSize, experiment.Device, experiment.Workers, (task, _) => f(task));

        var curves = new List<Curve>();
        var learned = Each(Split.Test, testTasks, task => LearnedCurve(learner, task, steps));
        curves.Add(new Curve("learned (LSTM)", double.NaN, Summarise(learned, steps)));
        foreach (var kind in Baselines)
        {
            var finals = Each(Split.Val, valTasks, task => Rates.Select(r => BaselineCurve(learner, task, kind, r, steps)[steps]).ToArray());
            var best = BestRate(finals);
            log?.Invoke($"{kind}: rate {best.ToString(CultureInfo.InvariantCulture)} has the lowest final query loss on {valTasks} validation tasks");
            curves.Add(new Curve(kind, best, Summarise(Each(Split.Test, testTasks, task => BaselineCurve(learner, task, kind, best, steps)), steps)));
        }

        var folder = Path.Combine(runDir, Figures.Folder);
        Directory.CreateDirectory(folder);
        var run = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir)));
        var figure = Figure(curves, run, config.Algorithm.Name, valTasks, testTasks, checkpoint.Iteration);
        var json = Path.Combine(folder, JsonFile);
        File.WriteAllText(json + ".tmp", figure.ToJsonString() + "\n");
        File.Move(json + ".tmp", json, overwrite: true);
        var csv = Path.Combine(folder, CsvFile);
        File.WriteAllText(csv + ".tmp", Csv(curves));
        File.Move(csv + ".tmp", csv, overwrite: true);
        var png = Figures.WritePng(figure, Path.Combine(folder, PngFile));
        return new Result(curves, valTasks, testTasks, steps, checkpoint.Iteration, clock.Elapsed.TotalSeconds, json, csv, png);
    }

    /// <summary>The grid's rate with the lowest mean final loss; a rate that diverged anywhere (not finite) is out.</summary>
    public static double BestRate(IReadOnlyList<double[]> finalsPerTask)
    {
        var best = (Rate: double.NaN, Loss: double.PositiveInfinity);
        for (var r = 0; r < Rates.Length; r++)
        {
            var mean = finalsPerTask.Average(f => f[r]);
            if (double.IsFinite(mean) && mean < best.Loss) best = (Rates[r], mean);
        }
        return double.IsNaN(best.Rate) ? Rates[0] : best.Rate;
    }

    private static Summary[] Summarise(IReadOnlyList<double[]> perTask, int steps) =>
        [.. Enumerable.Range(0, steps + 1).Select(t => Summary.Of([.. perTask.Select(c => c[t])]))];

    private static readonly string[] Colours = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"];

    private static JsonObject Figure(IReadOnlyList<Curve> curves, string run, string algorithm, int valTasks, int testTasks, long iteration)
    {
        static JsonArray Nums(IEnumerable<double> xs) => new([.. xs.Select(x => (JsonNode)JsonValue.Create(double.IsFinite(x) ? Math.Round(x, 7) : double.NaN))]);
        var series = new JsonArray();
        foreach (var (c, i) in curves.Select((c, i) => (c, i)))
            series.Add(new JsonObject
            {
                ["label"] = double.IsNaN(c.Rate) ? c.Label : $"{c.Label} (rate {c.Rate.ToString(CultureInfo.InvariantCulture)})",
                ["colour"] = Colours[i % Colours.Length],
                ["x"] = Nums(Enumerable.Range(0, c.Steps.Count).Select(t => (double)t)),
                ["y"] = Nums(c.Steps.Select(s => s.Mean)),
                ["lo"] = Nums(c.Steps.Select(s => s.Mean - s.Ci95)),
                ["hi"] = Nums(c.Steps.Select(s => s.Mean + s.Ci95)),
            });
        return new JsonObject
        {
            ["id"] = $"optimizer-curves-{run}",
            ["title"] = $"{algorithm}: query loss over optimisation steps, learned optimizer against tuned baselines ({run})",
            ["caption"] = $"Mean ± 95% CI over {testTasks} test tasks, checkpoint iteration {iteration}; each baseline at the rate of {{{string.Join(", ", Rates.Select(r => r.ToString(CultureInfo.InvariantCulture)))}}} with the lowest final query loss on {valTasks} validation tasks. Andrychowicz et al. (2016), Figure 2.",
            ["xLabel"] = "optimisation step",
            ["yLabel"] = "query loss (log scale)",
            ["yLog"] = true,
            ["panels"] = new JsonArray { new JsonObject { ["title"] = "query loss", ["series"] = series } },
        };
    }

    private static string Csv(IReadOnlyList<Curve> curves)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder("optimizer,rate,step,mean,ci95,tasks\n");
        foreach (var c in curves)
            for (var t = 0; t < c.Steps.Count; t++)
                sb.Append(inv, $"{c.Label},{(double.IsNaN(c.Rate) ? "" : c.Rate.ToString(inv))},{t},{c.Steps[t].Mean.ToString("R", inv)},{c.Steps[t].Ci95.ToString("R", inv)},{c.Steps[t].Count}\n");
        return sb.ToString();
    }
}
