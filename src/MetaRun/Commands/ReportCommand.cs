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
        var command = new Command("report", "Write one self-contained HTML report: learning curves, meta-test results, comparison table, configs") { dirs, output };
        command.SetAction(r =>
        {
            var runs = RunFolder.Discover(r.GetValue(dirs)!);
            foreach (var w in runs.SelectMany(run => run.Warnings)) Console.Error.WriteLine($"metarun: warning: {w}");
            var path = HtmlReport.Write(runs, r.GetValue(output)!);
            Console.WriteLine($"report written to {path}");
            return ExitCodes.Success;
        });
        return command;
    }
}
