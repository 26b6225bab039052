using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MetaRun.Reports;

/// <summary>
/// One self-contained, interactive HTML file: the runs' data as JSON (<see cref="ReportData"/>),
/// the chart library (uPlot, embedded at build time from npm) and the page's own script and style,
/// all inline. It requests nothing from anywhere, so it opens offline and can be mailed or
/// archived as one file. What it shows: learning curves with seeds of a setting grouped into a
/// mean and a band (hover, zoom, smoothing, log scale, toggles), the results table, a
/// dot-and-interval chart, one panel per swept key, the config diff, evaluation variants in
/// sections of their own, and the adaptation figures a run has.
/// </summary>
public static class HtmlReport
{
    public static string Write(IReadOnlyList<RunFolder> runs, string outPath, IReadOnlyList<JsonObject>? figures = null)
    {
        var data = ReportData.Build(runs, Comparison.PerMetric(runs), figures ?? Figures.Of(runs));
        var b = new StringBuilder();
        var title = $"metarun report: {string.Join(", ", runs.Select(r => r.Name).Take(4))}{(runs.Count > 4 ? ", …" : "")}";
        b.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        b.Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        b.Append($"<title>{WebUtility.HtmlEncode(title)}</title>\n");
        b.Append("<style>\n").Append(Resource("uPlot.min.css")).Append('\n').Append(Resource("Report.css")).Append("</style>\n</head><body>\n");
        b.Append("<main id=\"report\"><h1>metarun report</h1><p>Loading… (the report needs JavaScript)</p></main>\n");
        b.Append("<script type=\"application/json\" id=\"report-data\">")
            .Append(Script(data.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping })))
            .Append("</script>\n");
        b.Append("<!-- uPlot (MIT licence):\n").Append(Resource("uPlot.LICENSE").Replace("--", "- -")).Append("\n-->\n");
        b.Append("<script>").Append(Script(Resource("uPlot.iife.min.js"))).Append("</script>\n");
        b.Append("<script>").Append(Script(Resource("Report.js"))).Append("</script>\n");
        b.Append("</body></html>\n");

        var full = Path.GetFullPath(outPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + ".tmp";
        File.WriteAllText(tmp, b.ToString());
        File.Move(tmp, full, overwrite: true);
        return full;
    }

    // Inside <script> only "</script" (any case) ends the element; "<\/" means the same to JavaScript and JSON strings.
    private static string Script(string s) => s.Replace("</", "<\\/");

    private static string Resource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the report resource {name} is not in the build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
