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
    /// Learning curves of the runs, train and validation on shared axes where they share a unit:
    /// loss (cross-entropy, or MSE for regression) with validation's 95% band for regression,
    /// accuracy with validation's 95% band, the outer learning rate when it follows a schedule
    /// (a constant one is a number in the config, not a panel), and seconds per outer step
    /// (without validation and checkpoint time). Legends sit outside the data.
    /// </summary>
    public static IReadOnlyList<NamedPlot> Curves(IReadOnlyList<RunFolder> runs)
    {
        var plots = new List<NamedPlot>();
        var regression = runs.All(r => r.IsRegression);
        var withMetrics = runs.Where(r => r.Metrics.Count > 0).ToList();
        if (withMetrics.Count == 0) return plots;
        var window = Math.Max(1, withMetrics.Max(r => r.Metrics.Count) / 50);
        var trainLabel = window > 1 ? $"train (moving average of {window})" : "train";
        // One colour per run across every plot, so a run is followed by colour alone; validation dashed with markers.
        var palette = new ScottPlot.Palettes.Category10();
        var colours = withMetrics.Select((r, i) => (r, i)).ToDictionary(x => x.r, x => palette.GetColor(x.i));
        string Name(RunFolder r, string what) => withMetrics.Count > 1 ? $"{r.Name} {what}" : what;

        var lossName = runs.All(r => r.Config.Data.Dataset.IsEnvironment()) ? "minus the return" : regression ? "MSE" : "cross-entropy";
        var loss = NewPlot($"Loss ({lossName})", lossName);
        foreach (var r in withMetrics)
        {
            Line(loss, r.Metrics.Select(m => ((double)m.Iteration, m.TrainLoss)), window, colours[r], Name(r, trainLabel));
            var val = r.Metrics.Where(m => m.ValLoss != null).ToList();
            Validation(loss, val.Select(m => ((double)m.Iteration, m.ValLoss!.Value, regression ? m.ValCi95 : null)).ToList(), colours[r], Name(r, regression ? "validation (95% CI)" : "validation"));
        }
        plots.Add(new NamedPlot("loss", loss.Axes.Title.Label.Text, Finish(loss)));

        if (!regression)
        {
            var acc = NewPlot("Accuracy", "accuracy");
            foreach (var r in withMetrics)
            {
                Line(acc, r.Metrics.Select(m => ((double)m.Iteration, m.TrainAccuracy)), window, colours[r], Name(r, trainLabel));
                var val = r.Metrics.Where(m => m.ValAccuracy != null).ToList();
                Validation(acc, val.Select(m => ((double)m.Iteration, m.ValAccuracy!.Value, m.ValCi95)).ToList(), colours[r], Name(r, "validation (95% CI)"));
            }
            plots.Add(new NamedPlot("accuracy", "Accuracy", Finish(acc)));
        }

        var scheduled = withMetrics.Where(r => r.Config.Algorithm.OuterLrSchedule != LrSchedule.Constant).ToList();
        if (scheduled.Count > 0)
        {
            var lr = NewPlot("Outer learning rate", "learning rate");
            foreach (var r in scheduled)
                Line(lr, r.Metrics.Select(m => ((double)m.Iteration, MetaIteration.ScheduledLr(r.Config.Algorithm, m.Iteration))), 1, colours[r], withMetrics.Count > 1 ? r.Name : "scheduled");
            plots.Add(new NamedPlot("learning-rate", "Outer learning rate", Finish(lr)));
        }

        var sec = NewPlot("Seconds per outer step", "seconds");
        foreach (var r in withMetrics)
            Line(sec, SecondsPerIteration(r).Select(s => ((double)s.Iteration, s.Seconds)), window, colours[r], withMetrics.Count > 1 ? r.Name : "without validation and checkpoints");
        plots.Add(new NamedPlot("seconds", "Seconds per outer step", Finish(sec)));
        return plots;
    }

    private static void Line(Plot plot, IEnumerable<(double X, double Y)> series, int window, Color colour, string label)
    {
        var points = series.Where(p => double.IsFinite(p.Y)).ToList();
        if (points.Count == 0) return;
        var line = plot.Add.ScatterLine(points.Select(p => p.X).ToArray(), MovingAverage(points.Select(p => p.Y).ToArray(), window));
        line.LegendText = label;
        line.Color = colour;
    }

    private static void Validation(Plot plot, IReadOnlyList<(double X, double Y, double? Ci)> rows, Color colour, string label)
    {
        if (rows.Count == 0) return;
        var xs = rows.Select(r => r.X).ToArray();
        var ys = rows.Select(r => r.Y).ToArray();
        if (rows.All(r => r.Ci != null))
        {
            var band = plot.Add.FillY(xs, ys.Select((y, i) => y - rows[i].Ci!.Value).ToArray(), ys.Select((y, i) => y + rows[i].Ci!.Value).ToArray());
            band.FillColor = colour.WithAlpha(0.2);
            band.LineColor = Colors.Transparent;
        }
        var line = plot.Add.Scatter(xs, ys);
        line.Color = colour;
        line.LinePattern = LinePattern.Dashed;
        line.MarkerSize = 6;
        line.LegendText = label;
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

    /// <summary>Writes curves.png into a run folder from its metrics.csv.</summary>
    public static string WriteCurves(RunDirectory run) => WriteCurves(RunFolder.Read(run.Path), run.CurvesPath);

    /// <summary>Writes <paramref name="run"/>'s learning curves as one image: a row of panels, legends below their data.</summary>
    public static string WriteCurves(RunFolder run, string path)
    {
        var plots = Curves([run]);
        if (plots.Count == 0) return path;
        return SaveGrid([.. plots.Select(p => p.Plot)], Math.Min(3, plots.Count), CurvesPanelWidth, CurvesPanelHeight, path);
    }

    /// <summary>Panels as one PNG, <paramref name="columns"/> to a row, each panel <paramref name="panelWidth"/> × <paramref name="panelHeight"/>.</summary>
    internal static string SaveGrid(IReadOnlyList<Plot> panels, int columns, int panelWidth, int panelHeight, string path)
    {
        var multi = new Multiplot();
        // A new Multiplot holds one empty plot; it is replaced rather than added to.
        multi.Reset(panels[0]);
        foreach (var p in panels.Skip(1)) multi.AddPlot(p);
        var rows = (panels.Count + columns - 1) / columns;
        multi.Layout = new ScottPlot.MultiplotLayouts.Grid(rows, columns);
        // Written aside and renamed, so a viewer never opens half an image.
        var tmp = path + ".tmp.png";
        multi.SavePng(tmp, panelWidth * columns, panelHeight * rows);
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    public const int CurvesPanelWidth = 500, CurvesPanelHeight = 400;

    /// <summary>
    /// curves.png for the trainer, redrawn at every checkpoint from the rows it has been given:
    /// the run folder and metrics.csv are read once (when training starts or resumes), not at
    /// every checkpoint. A plot that cannot be drawn or written is a warning in the log, never
    /// the end of a training run.
    /// </summary>
    public sealed class CurvesWriter
    {
        private readonly RunDirectory run;
        private readonly Serilog.ILogger log;
        private readonly RunFolder? folder;
        private readonly List<MetricsRow> rows = [];

        /// <summary>Reads the run folder as it is now: a resumed run's earlier rows (metrics.csv already cut at the checkpoint).</summary>
        public CurvesWriter(RunDirectory run, Serilog.ILogger log)
        {
            (this.run, this.log) = (run, log);
            try
            {
                var read = RunFolder.Read(run.Path);
                rows.AddRange(read.Metrics);
                folder = new RunFolder { Dir = read.Dir, Name = read.Name, Config = read.Config, ConfigYaml = read.ConfigYaml, Keys = read.Keys, Metrics = rows };
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or MetaRunException)
            {
                log.Warning("curves.png will not be drawn: {Message}", e.Message);
            }
        }

        public void Add(MetricsRow row) => rows.Add(row);

        public void Write()
        {
            if (folder == null) return;
            try { WriteCurves(folder, run.CurvesPath); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or MetaRunException or InvalidOperationException or ArgumentException)
            {
                log.Warning("curves.png not written: {Message}", e.Message);
            }
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

    private static Plot NewPlot(string title, string yLabel)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel("iteration");
        plot.YLabel(yLabel);
        return plot;
    }

    private static Plot Finish(Plot plot)
    {
        plot.ShowLegend(Edge.Bottom);
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
