using System.CommandLine;
using MetaRun.Reports;
using Spectre.Console;

namespace MetaRun.Cli.Commands;

/// <summary>metarun compare DIR... [--format table|csv|json|markdown]</summary>
public static class CompareCommand
{
    public static Command Create()
    {
        var dirs = new Argument<string[]>("dirs") { Description = "Run folders, or sweep folders holding them", Arity = ArgumentArity.OneOrMore };
        var format = new Option<string>("--format") { Description = "Output format", DefaultValueFactory = _ => "table" };
        format.AcceptOnlyFromAmong("table", "csv", "json", "markdown");
        var command = new Command("compare", "Compare runs: the config keys that differ, best validation, meta-test mean ± 95% CI, seeds grouped") { dirs, format };
        command.SetAction(r => Run(r.GetValue(dirs)!, r.GetValue(format)!));
        return command;
    }

    private static int Run(string[] dirs, string format)
    {
        var runs = RunFolder.Discover(dirs);
        foreach (var w in runs.SelectMany(r => r.Warnings)) Console.Error.WriteLine($"metarun: warning: {w}");
        var comparisons = Comparison.PerMetric(runs);
        if (format == "json" && comparisons.Count > 1)
        {
            Console.WriteLine("[" + string.Join(",", comparisons.Select(c => c.ToJson().TrimEnd())) + "]");
            return ExitCodes.Success;
        }
        TableWidth.Apply();
        foreach (var (comparison, i) in comparisons.Select((c, i) => (c, i)))
        {
            if (i > 0) Console.WriteLine();
            switch (format)
            {
                case "csv": Console.Write(comparison.ToCsv()); break;
                case "json": Console.Write(comparison.ToJson()); break;
                case "markdown": Console.Write(comparison.ToMarkdown()); break;
                default:
                    var table = new Table();
                    // The terminal is narrow: keys by their last part where that is unambiguous.
                    var shortKeys = comparison.Keys.Select(k => comparison.Keys.Count(o => o.Split('.')[^1] == k.Split('.')[^1]) > 1 ? k : k.Split('.')[^1]).ToList();
                    foreach (var (h, j) in comparison.Headers.Select((h, j) => (j >= 1 && j <= shortKeys.Count ? shortKeys[j - 1] : h, j)))
                        table.AddColumn(new TableColumn(Markup.Escape(h)) { Alignment = j < comparison.LabelColumns ? Justify.Left : Justify.Right });
                    foreach (var row in comparison.Cells()) table.AddRow(row.Select(Markup.Escape).ToArray());
                    AnsiConsole.Write(table);
                    // A paragraph, so the footnote wraps at the same width as the table.
                    AnsiConsole.Write(new Paragraph(comparison.TestColumnNote + "\n"));
                    break;
            }
        }
        return ExitCodes.Success;
    }
}
