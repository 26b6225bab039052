using System.CommandLine;
using MetaRun.Reports;

namespace MetaRun.Cli.Commands;

/// <summary>metarun report DIR... --out report.html</summary>
public static class ReportCommand
{
    public static Command Create()
    {
        var dirs = new Argument<string[]>("dirs") { Description = "Run folders, or sweep folders holding them", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "The HTML file to write", DefaultValueFactory = _ => "report.html" };
        var png = new Option<string?>("--png") { Description = "Also write the adaptation figures (score against inner steps, regression fits) as PNG images into this folder" };
        var command = new Command("report", "Write one self-contained HTML report: learning curves, meta-test results, comparison table, configs") { dirs, output, png };
        command.SetAction(r =>
        {
            var runs = RunFolder.Discover(r.GetValue(dirs)!);
            foreach (var w in runs.SelectMany(run => run.Warnings)) Console.Error.WriteLine($"metarun: warning: {w}");
            var figures = Figures.Of(runs);
            var path = HtmlReport.Write(runs, r.GetValue(output)!, figures);
            Console.WriteLine($"report written to {path}");
            if (r.GetValue(png) is { } dir)
            {
                var images = Figures.WritePngs(figures, dir);
                Console.WriteLine(images.Count > 0 ? $"figures written to {string.Join(", ", images)}"
                    : "no adaptation figures to write: evaluate a run with metarun eval RUN --inner-steps 0..10 first");
            }
            return ExitCodes.Success;
        });
        return command;
    }
}
