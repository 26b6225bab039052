using MetaRun.Config;
using MetaRun.Training;
using ScottPlot;

namespace MetaRun.Reports;

/// <summary>A titled plot of the report (or of curves.png).</summary>
public sealed record NamedPlot(string Id, string Title, Plot Plot);

/// <summary>The learning-curve and result plots, drawn with ScottPlot from run folders.</summary>
public static class Plots
{
    /// <summary>
    /// Learning curves of the runs: train loss (and accuracy), validation with its 95% band,
    /// outer learning rate and seconds per iteration. Plots with nothing to show are left out.
    /// </summary>
    public static IReadOnlyList<NamedPlot> Curves(IReadOnlyList<RunFolder> runs)
    {
        var plots = new List<NamedPlot>();
        var regression = runs.All(r => r.IsRegression);
        var withMetrics = runs.Where(r => r.Metrics.Count > 0).ToList();
        if (withMetrics.Count == 0) return plots;
        var window = Math.Max(1, withMetrics.Max(r => r.Metrics.Count) / 50);
        var smooth = window > 1 ? $" (moving average of {window})" : "";
        // One colour per run across every plot, so a run is followed by colour alone.
        var palette = new ScottPlot.Palettes.Category10();
        var colours = withMetrics.Select((r, i) => (r, i)).ToDictionary(x => x.r, x => palette.GetColor(x.i));

        var lossName = runs.All(r => r.Config.Data.Dataset.IsEnvironment()) ? "minus the return" : regression ? "MSE" : "cross-entropy";
        plots.Add(Lines("train-loss", $"Train loss{smooth}", lossName, withMetrics, colours, r => r.Metrics.Select(m => (m.Iteration, m.TrainLoss)), window));
        if (!regression)
            plots.Add(Lines("train-accuracy", $"Train accuracy{smooth}", "accuracy", withMetrics, colours, r => r.Metrics.Select(m => (m.Iteration, m.TrainAccuracy)), window));

        var validated = withMetrics.Where(r => r.Metrics.Any(m => regression ? m.ValLoss != null : m.ValAccuracy != null)).ToList();
        if (validated.Count > 0)
        {
            var plot = NewPlot(regression ? "Validation loss" : "Validation accuracy (95% CI band)", regression ? lossName : "accuracy");
            foreach (var r in validated)
            {
                var rows = r.Metrics.Where(m => regression ? m.ValLoss != null : m.ValAccuracy != null).ToList();
                var xs = rows.Select(m => (double)m.Iteration).ToArray();
                var ys = rows.Select(m => regression ? m.ValLoss!.Value : m.ValAccuracy!.Value).ToArray();
                var line = plot.Add.Scatter(xs, ys);
                line.LegendText = r.Name;
                line.Color = colours[r];
                if (!regression && rows.All(m => m.ValCi95 != null))
                {
                    var band = plot.Add.FillY(xs, ys.Select((y, i) => y - rows[i].ValCi95!.Value).ToArray(), ys.Select((y, i) => y + rows[i].ValCi95!.Value).ToArray());
                    band.FillColor = line.Color.WithAlpha(0.2);
                    band.LineColor = Colors.Transparent;
                }
            }
            plots.Add(new NamedPlot("validation", plot.Axes.Title.Label.Text, Finish(plot, validated.Count)));
        }

        var lr = Lines("learning-rate", "Outer learning rate", "learning rate", withMetrics, colours,
            r => r.Metrics.Select(m => (m.Iteration, MetaIteration.ScheduledLr(r.Config.Algorithm, m.Iteration))), 1);
        // From zero: a constant rate would otherwise get an axis centred on nothing.
        lr.Plot.Axes.SetLimitsY(0, withMetrics.Max(r => r.Config.Algorithm.OuterLr) * 1.15);
        plots.Add(lr);
        plots.Add(Lines("seconds", $"Seconds per iteration{smooth}", "seconds", withMetrics, colours, r => SecondsPerIteration(r), window));
        return plots;
    }

    /// <summary>Meta-test mean per group (seeds averaged) with its 95% interval.</summary>
    public static NamedPlot? TestResults(Comparison comparison)
    {
        var rows = comparison.Rows.Where(r => r.TestMean != null).ToList();
        if (rows.Count == 0) return null;
        var plot = NewPlot($"Meta-test {comparison.Metric} (mean over seeds, mean 95% CI)", comparison.Metric);
        var xs = rows.Select((_, i) => (double)i).ToArray();
        var means = rows.Select(r => r.TestMean!.Value).ToArray();
        plot.Add.Bars(means);
        plot.Add.ErrorBar(xs, means, rows.Select(r => r.TestCi95 ?? 0).ToArray()).LineWidth = 2;
        plot.Axes.Bottom.SetTicks(xs, rows.Select(r => r.Label(comparison.Keys)).ToArray());
        plot.Axes.Bottom.Label.Text = "";
        plot.Axes.Margins(bottom: 0);
        return new NamedPlot("test", plot.Axes.Title.Label.Text, plot);
    }

    /// <summary>
    /// A reliability diagram per run with a calibrated headline evaluation: per confidence bin the
    /// share of right predictions (bars) against the diagonal of perfect calibration, the bin's
    /// mean confidence marked; the ECE in the title.
    /// </summary>
    public static IReadOnlyList<NamedPlot> Reliability(IReadOnlyList<RunFolder> runs)
    {
        var plots = new List<NamedPlot>();
        foreach (var r in runs)
        {
            if (r.Headline is not { Reliability: { } bins } h) continue;
            var width = 1.0 / Evaluation.Calibration.Bins;
            var occupied = Enumerable.Range(0, Evaluation.Calibration.Bins).Where(b => bins.Counts[b] > 0).ToList();
            var title = $"Reliability: {r.Name} (ECE {h.Ece:0.0000}, {bins.Total} test queries)";
            var plot = new Plot();
            plot.Title(title);
            plot.XLabel("confidence (top class probability)");
            plot.YLabel("accuracy");
            var bars = plot.Add.Bars(occupied.Select(b => (b + 0.5) * width).ToArray(), occupied.Select(b => bins.Bin(b).Accuracy).ToArray());
            foreach (var bar in bars.Bars) bar.Size = width * 0.9;
            bars.LegendText = "accuracy in the bin";
            var mean = plot.Add.ScatterPoints(occupied.Select(b => bins.Bin(b).Confidence).ToArray(), occupied.Select(b => bins.Bin(b).Accuracy).ToArray());
            mean.LegendText = "at the bin's mean confidence";
            var diagonal = plot.Add.Line(0, 0, 1, 1);
            diagonal.LinePattern = LinePattern.Dashed;
            diagonal.LegendText = "perfect calibration";
            plot.Axes.SetLimits(0, 1, 0, 1);
            plot.ShowLegend(Edge.Right);
            plots.Add(new NamedPlot($"reliability-{r.Name}", title, plot));
        }
        return plots;
    }

    /// <summary>Writes curves.png into a run folder: its learning curves on one image.</summary>
    public static string WriteCurves(RunDirectory run)
    {
        var plots = Curves([RunFolder.Read(run.Path)]);
        if (plots.Count == 0) return run.CurvesPath;
        var multi = new Multiplot();
        // A new Multiplot holds one empty plot; it is replaced rather than added to.
        multi.Reset(plots[0].Plot);
        foreach (var p in plots.Skip(1)) multi.AddPlot(p.Plot);
        var columns = Math.Min(3, plots.Count);
        var rows = (plots.Count + columns - 1) / columns;
        multi.Layout = new ScottPlot.MultiplotLayouts.Grid(rows, columns);
        // Written aside and renamed, so a viewer never opens half an image.
        var tmp = run.CurvesPath + ".tmp.png";
        multi.SavePng(tmp, 500 * columns, 350 * rows);
        File.Move(tmp, run.CurvesPath, overwrite: true);
        return run.CurvesPath;
    }

    /// <summary>
    /// curves.png for the trainer: a plot that cannot be drawn or written is a warning in the
    /// log, never the end of a training run.
    /// </summary>
    public static void TryWriteCurves(RunDirectory run, Serilog.ILogger log)
    {
        try { WriteCurves(run); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or MetaRunException or InvalidOperationException or ArgumentException)
        {
            log.Warning("curves.png not written: {Message}", e.Message);
        }
    }

    /// <summary>
    /// Seconds per outer step from metrics.csv's clock. A step right after a validation or a
    /// checkpoint also paid for that work, so it is left out (kept only when every step is such
    /// a step); a resume restarts the clock at 0, so that step has no duration either.
    /// </summary>
    public static IReadOnlyList<(long Iteration, double Seconds)> SecondsPerIteration(RunFolder r)
    {
        var interval = r.Config.Checkpoint.Interval;
        var all = new List<(long, double, bool)>();
        for (var i = 1; i < r.Metrics.Count; i++)
        {
            var (prev, cur) = (r.Metrics[i - 1], r.Metrics[i]);
            var dt = (cur.Seconds - prev.Seconds) / (cur.Iteration - prev.Iteration);
            if (dt < 0 || !double.IsFinite(dt)) continue;
            all.Add((cur.Iteration, dt, prev.ValLoss != null || prev.ValAccuracy != null || prev.Iteration % interval == 0));
        }
        var clean = all.Where(x => !x.Item3).ToList();
        return [.. (clean.Count > 0 ? clean : all).Select(x => (x.Item1, x.Item2))];
    }

    private static NamedPlot Lines(string id, string title, string yLabel, IReadOnlyList<RunFolder> runs, IReadOnlyDictionary<RunFolder, Color> colours, Func<RunFolder, IEnumerable<(long X, double Y)>> series, int window)
    {
        var plot = NewPlot(title, yLabel);
        foreach (var r in runs)
        {
            var points = series(r).Where(p => double.IsFinite(p.Y)).ToList();
            if (points.Count == 0) continue;
            var line = plot.Add.ScatterLine(points.Select(p => (double)p.X).ToArray(), MovingAverage(points.Select(p => p.Y).ToArray(), window));
            line.LegendText = r.Name;
            line.Color = colours[r];
        }
        return new NamedPlot(id, title, Finish(plot, runs.Count));
    }

    private static Plot NewPlot(string title, string yLabel)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel("iteration");
        plot.YLabel(yLabel);
        return plot;
    }

    private static Plot Finish(Plot plot, int series)
    {
        if (series > 1) plot.ShowLegend(Edge.Right);
        return plot;
    }

    // Trailing mean over the last `window` points, so noisy per-iteration curves read as trends.
    private static double[] MovingAverage(double[] ys, int window)
    {
        if (window <= 1) return ys;
        var result = new double[ys.Length];
        double sum = 0;
        for (var i = 0; i < ys.Length; i++)
        {
            sum += ys[i];
            if (i >= window) sum -= ys[i - window];
            result[i] = sum / Math.Min(i + 1, window);
        }
        return result;
    }
}
