using System.CommandLine;
using MetaRun.Config;
using MetaRun.Training;

namespace MetaRun.Cli.Commands;

/// <summary>metarun bench: timings. --data CONFIG measures the data pipeline (<see cref="RunData"/>).</summary>
public static class BenchCommand
{
    public static readonly Option<string?> Data = new("--data") { Description = "Benchmark the data pipeline of this config: first-time preparation, cached start, episodes/s" };
    public static readonly Option<int> Episodes = new("--episodes") { Description = "Episodes to sample for the sampling rate", DefaultValueFactory = _ => 20000 };
    public static readonly Option<string[]> Set = new("--set") { Description = "Override a config key: key.path=value (repeatable)" };

    public static Command Create()
    {
        var config = new Argument<string?>("config") { Description = "Config whose meta-iterations to time", Arity = ArgumentArity.ZeroOrOne };
        var iterations = new Option<int>("--iterations") { Description = "Meta-iterations to time", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "Meta-iterations to run first, untimed", DefaultValueFactory = _ => 3 };
        var output = new Option<string>("--out") { Description = "Where to write the JSON result", DefaultValueFactory = _ => "bench.json" };
        var command = new Command("bench", "Measure seconds per meta-iteration (sampling included), or with --data CONFIG the data pipeline alone")
            { config, Data, Episodes, Set, iterations, warmup, output, Nproc.Option, Nproc.Oversubscribe };
        command.SetAction(parse =>
        {
            var sets = parse.GetValue(Set) ?? [];
            var dataRoot = parse.GetValue(GlobalOptions.DataRoot);
            var data = parse.GetValue(Data);
            if (data != null) return RunData(data, sets, dataRoot, parse.GetValue(Episodes), Console.Out);
            var path = parse.GetValue(config) ?? throw new ConfigException("bench needs a CONFIG (or --data CONFIG for the data pipeline)");
            if (Nproc.Requested(parse) is { } n) return Nproc.Launch(parse, n, ConfigLoader.Load(path, sets));
            var report = BenchmarkReport.OfTraining(path, ConfigLoader.Load(path, sets), dataRoot, parse.GetValue(iterations), parse.GetValue(warmup));
            return report == null ? ExitCodes.Success : Print(report, Console.Out, parse.GetValue(output)!);
        });
        return command;
    }

    /// <summary>Times the data pipeline of a config; prints and writes the figures.</summary>
    public static int RunData(string configPath, IReadOnlyList<string> sets, string? dataRoot, int episodes, TextWriter output, string jsonPath = "bench-data.json") =>
        Print(BenchmarkReport.OfData(configPath, ConfigLoader.Load(configPath, sets), dataRoot, episodes), output, jsonPath);

    private static int Print(BenchmarkReport report, TextWriter output, string jsonPath)
    {
        foreach (var line in report.Lines) output.WriteLine(line);
        output.WriteLine($"  wrote {report.Write(jsonPath)}");
        return ExitCodes.Success;
    }
}
