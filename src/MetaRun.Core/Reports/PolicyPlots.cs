using MetaRun.Evaluation;
using ScottPlot;

namespace MetaRun.Reports;

/// <summary>The meta-RL figures of Finn et al. (2017): return against adaptation steps (Figure 5, left) and trajectories before and after adaptation (Figure 4).</summary>
public static class PolicyPlots
{
    /// <summary>
    /// Return against steps on a log axis of −return, better upwards, as the paper's Figure 5 draws
    /// it: returns span −200 (random) to −2 (oracle), and on a linear axis everything but the
    /// random policy is one line at the top.
    /// </summary>
    public static void WriteReturns(IReadOnlyList<ReturnCurve> curves, string path)
    {
        var plot = new Plot();
        plot.Title("2D navigation: average return on held-out goals (95% CI)");
        plot.XLabel("number of gradient steps");
        plot.YLabel("average return (log scale)");
        // y = −log10(−return): −1 → 0, −10 → −1, −100 → −2.
        static double Y(double r) => -Math.Log10(Math.Max(-r, 1e-3));
        var palette = new ScottPlot.Palettes.Category10();
        for (var i = 0; i < curves.Count; i++)
        {
            var c = curves[i];
            var xs = Enumerable.Range(0, c.Steps.Length).Select(s => (double)s).ToArray();
            var ys = c.Steps.Select(s => Y(s.Mean)).ToArray();
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = c.Label;
            line.Color = palette.GetColor(i);
            var up = c.Steps.Select((s, k) => Y(s.Mean + s.Ci95) - ys[k]).ToArray();
            var down = c.Steps.Select((s, k) => ys[k] - Y(s.Mean - s.Ci95)).ToArray();
            var bars = plot.Add.ErrorBar(xs, ys, up);
            bars.YErrorNegative = down;
            bars.LineColor = palette.GetColor(i);
        }
        plot.Axes.Bottom.SetTicks([0, 1, 2, 3], ["0", "1", "2", "3"]);
        double[] labels = [-1, -2, -5, -10, -20, -50, -100, -200, -500];
        plot.Axes.Left.SetTicks([.. labels.Select(Y)], [.. labels.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        plot.ShowLegend(Edge.Right);
        Save(plot, path, 800, 450);
    }

    /// <summary>One panel per policy: for each of a few goals (stars), a trajectory before adaptation, after 1 step and after 3.</summary>
    public static void WriteTrajectories(IReadOnlyList<ReturnCurve> curves, string path)
    {
        var panels = curves.Where(c => c.Paths.Count > 0).ToList();
        if (panels.Count == 0) return;
        var multi = new Multiplot();
        var palette = new ScottPlot.Palettes.Category10();
        for (var p = 0; p < panels.Count; p++)
        {
            var plot = new Plot();
            plot.Title(panels[p].Label);
            (int Step, string Name, LinePattern Pattern)[] shown = [(0, "pre-update", LinePattern.Dotted), (1, "1 step", LinePattern.Dashed), (3, "3 steps", LinePattern.Solid)];
            for (var g = 0; g < panels[p].Paths.Count; g++)
            {
                var (goal, paths) = panels[p].Paths[g];
                foreach (var (step, name, pattern) in shown)
                {
                    if (step >= paths.Length) continue;
                    var line = plot.Add.ScatterLine(paths[step].Select(q => q[0]).ToArray(), paths[step].Select(q => q[1]).ToArray());
                    line.Color = palette.GetColor(g);
                    line.LinePattern = pattern;
                    line.LineWidth = step == 3 ? 2 : 1.5f;
                    if (g == 0) line.LegendText = name;
                }
                var star = plot.Add.Marker(goal[0], goal[1], MarkerShape.FilledDiamond, 12, Colors.Red);
                if (g == 0) star.LegendText = "goal";
            }
            plot.Axes.SquareUnits();
            plot.ShowLegend(Edge.Right);
            if (p == 0) multi.Reset(plot); else multi.AddPlot(plot);
        }
        multi.Layout = new ScottPlot.MultiplotLayouts.Grid(1, panels.Count);
        var tmp = path + ".tmp.png";
        multi.SavePng(tmp, 600 * panels.Count, 500);
        File.Move(tmp, path, overwrite: true);
    }

    private static void Save(Plot plot, string path, int width, int height)
    {
        var tmp = path + ".tmp.png";
        plot.SavePng(tmp, width, height);
        File.Move(tmp, path, overwrite: true);
    }
}
