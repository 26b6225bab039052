using System.CommandLine;

using Spectre.Console;

namespace MetaRun.Cli.Commands;

/// <summary>metarun list algorithms | configs | keys [--algorithm NAME]</summary>
public static class ListCommand
{
    public static Command Create()
    {
        var command = new Command("list", "List the algorithms, the ready configs, or the config keys with their defaults");
        var algorithms = new Command("algorithms", "Each algorithm: its paper, head, what it trains on, regression and batched support, the keys it reads");
        algorithms.SetAction(_ => Print(Catalogue.AlgorithmHeaders, Catalogue.Algorithms()));
        var configs = new Command("configs", "The ready configs: algorithm, data, episodes, iterations and the published figure each quotes");
        configs.SetAction(_ => Print(Catalogue.ConfigHeaders, Catalogue.Configs(Catalogue.ConfigsFolder()
            ?? throw new MetaRunException(ExitCodes.IoProblem, $"no configs/ folder beside {AppContext.BaseDirectory} or above it"))));
        var keys = new Command("keys", "Every config key with its default (with --algorithm: the keys that algorithm reads)");
        var algorithm = new Option<string?>("--algorithm") { Description = "Show only the algorithm.* keys this algorithm reads" };
        keys.Options.Add(algorithm);
        keys.SetAction(r => Print(Catalogue.KeyHeaders, Catalogue.Keys(r.GetValue(algorithm))));
        // `metarun list` alone lists the algorithms: what a newcomer asks first.
        command.SetAction(_ => Print(Catalogue.AlgorithmHeaders, Catalogue.Algorithms()));
        command.Subcommands.Add(algorithms);
        command.Subcommands.Add(configs);
        command.Subcommands.Add(keys);
        return command;
    }

    /// <summary>A table on a terminal; tab-separated lines when piped, so scripts and narrow terminals get every cell whole.</summary>
    private static int Print(IReadOnlyList<string> headers, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        if (Console.IsOutputRedirected)
        {
            Console.WriteLine(string.Join('\t', headers));
            foreach (var row in rows) Console.WriteLine(string.Join('\t', row));
            return ExitCodes.Success;
        }
        var table = new Table();
        foreach (var h in headers) table.AddColumn(new TableColumn(Markup.Escape(h)));
        foreach (var row in rows) table.AddRow([.. row.Select(Markup.Escape)]);
        AnsiConsole.Write(table);
        return ExitCodes.Success;
    }
}
