using System.Globalization;
using MetaRun.Training;

namespace MetaRun.Reports;

/// <summary>
/// Reads a run's metrics.csv back for compare and report, keeping what is readable: a file cut
/// short or ending in NUL bytes (what a power loss leaves), a row that does not parse, or a
/// header of another form ends the reading there with a warning naming the file and line, and the
/// run is still compared on the rows before it.
/// </summary>
public static class MetricsCsv
{
    public static IReadOnlyList<MetricsRow> Read(string path, ICollection<string> warnings)
    {
        if (!File.Exists(path)) return [];
        var rows = new List<MetricsRow>();
        string[] lines;
        try { lines = File.ReadAllLines(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warnings.Add($"{path}: cannot read it ({e.Message}); the run is compared without its curves");
            return [];
        }
        if (lines.Length == 0) return [];
        var header = lines[0].Split(',');
        int Col(string name) => Array.IndexOf(header, name);
        var (it, loss, acc, sec, vloss, vacc, vci) = (Col("iteration"), Col("train_loss"), Col("train_accuracy"), Col("seconds"), Col("val_loss"), Col("val_accuracy"), Col("val_ci95"));
        if (it < 0)
        {
            warnings.Add($"{path}:1: the header has no 'iteration' column (it reads '{Shorten(lines[0])}'); the run is compared without its curves");
            return [];
        }
        for (var i = 1; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0 && i == lines.Length - 1) break;
            var cells = line.Split(',');
            double? D(int c) => c >= 0 && c < cells.Length && cells[c].Length > 0 && double.TryParse(cells[c], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;
            if (line.Contains('\0') || cells.Length != header.Length || !long.TryParse(cells[it], NumberStyles.Integer, CultureInfo.InvariantCulture, out var iteration))
            {
                warnings.Add($"{path}:{i + 1}: unreadable row{(line.Contains('\0') ? " (NUL bytes: the file was cut short, e.g. by a power loss)" : $" '{Shorten(line)}'")}; read the {rows.Count} rows before it");
                break;
            }
            rows.Add(new MetricsRow(iteration, D(loss) ?? double.NaN, D(acc) ?? double.NaN, D(sec) ?? double.NaN, D(vloss), D(vacc), D(vci)));
        }
        return rows;
    }

    private static string Shorten(string s)
    {
        var clean = new string(s.Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return clean.Length <= 60 ? clean : clean[..60] + "…";
    }
}
