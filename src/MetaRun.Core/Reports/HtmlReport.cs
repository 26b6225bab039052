using System.Net;
using System.Text;

namespace MetaRun.Reports;

/// <summary>
/// One self-contained HTML file: learning curves and meta-test bars as PNG data URIs (ScottPlot),
/// the comparison table and every run's resolved config. It loads nothing from anywhere, so it
/// opens offline and can be mailed or archived as one file.
/// </summary>
public static class HtmlReport
{
    public const int PlotWidth = 900, PlotHeight = 420;

    public static string Write(IReadOnlyList<RunFolder> runs, string outPath)
    {
        var comparisons = Comparison.PerMetric(runs);
        var plots = Plots.Curves(runs).ToList();
        plots.AddRange(Plots.Reliability(runs));
        foreach (var comparison in comparisons.Reverse())
            if (Plots.TestResults(comparison) is { } bars) plots.Insert(0, bars);

        string H(string s) => WebUtility.HtmlEncode(s);
        var b = new StringBuilder();
        b.AppendLine("<!DOCTYPE html>");
        b.AppendLine("<html lang=\"en\"><head><meta charset=\"utf-8\">");
        b.AppendLine($"<title>metarun report: {H(string.Join(", ", runs.Select(r => r.Name).Take(4)))}{(runs.Count > 4 ? ", …" : "")}</title>");
        b.AppendLine("<style>body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse}"
                     + "td,th{border:1px solid #ccc;padding:3px 8px}td.n{text-align:right;font-family:monospace}"
                     + "img.plot{display:block;margin:1em 0;border:1px solid #eee}pre{background:#f6f6f6;padding:8px;overflow:auto}</style>");
        b.AppendLine("</head><body>");
        b.AppendLine($"<h1>metarun report</h1><p>{runs.Count} run(s), generated {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.</p>");

        b.AppendLine("<h2>Comparison</h2>");
        b.AppendLine("<p>Runs that differ only by seed share a row: best validation and meta-test are means over the seeds, ±95% CI is the mean of the runs' intervals, seed sd is the standard deviation of the seeds' test means.</p>");
        foreach (var (comparison, k) in comparisons.Select((c, k) => (c, k)))
        {
            b.AppendLine($"<table id=\"compare{(k == 0 ? "" : $"-{comparison.Metric}")}\"><tr>" + string.Concat(comparison.Headers.Select(h => $"<th>{H(h)}</th>")) + "</tr>");
            foreach (var row in comparison.Cells())
                b.AppendLine("<tr>" + string.Concat(row.Select((c, i) => i < comparison.Keys.Count ? $"<td>{H(c)}</td>" : $"<td class=\"n\">{H(c)}</td>")) + "</tr>");
            b.AppendLine("</table>");
            b.AppendLine($"<p class=\"note\">{H(comparison.TestColumnNote)}</p>");
        }

        b.AppendLine("<h2>Plots</h2>");
        foreach (var p in plots)
        {
            var png = p.Plot.GetImageBytes(PlotWidth, PlotHeight, ScottPlot.ImageFormat.Png);
            b.AppendLine($"<img class=\"plot\" id=\"plot-{p.Id}\" alt=\"{H(p.Title)}\" width=\"{PlotWidth}\" height=\"{PlotHeight}\" src=\"data:image/png;base64,{Convert.ToBase64String(png)}\">");
        }

        b.AppendLine("<h2>Runs</h2>");
        foreach (var r in runs)
        {
            var eval = r.Eval is { } e ? $" — {e.Split} {e.Metric} {e.Mean:0.0000} ± {e.Ci95:0.0000} over {e.Episodes} episodes ({e.Checkpoint} checkpoint)" : "";
            b.AppendLine($"<details><summary>{H(r.Name)}{H(eval)}</summary><p>{H(r.Dir)}</p><pre>{H(r.ConfigYaml)}</pre></details>");
        }
        b.AppendLine("</body></html>");

        var full = Path.GetFullPath(outPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, b.ToString());
        return full;
    }
}
