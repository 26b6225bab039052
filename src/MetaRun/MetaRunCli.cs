using System.CommandLine;
using MetaRun.Cli.Commands;

namespace MetaRun.Cli;

/// <summary>The metarun command tree; Run is the whole program (tests call it in-process).</summary>
public static class MetaRunCli
{
    public static RootCommand Build()
    {
        var root = new RootCommand("MetaRun: meta-learning experiments (MAML and kin) on libtorch");
        root.Options.Add(GlobalOptions.Verbose);
        root.Options.Add(GlobalOptions.DataRoot);
        VersionCommand.ReplaceDefault(root);
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(AdaptCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(DataCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(CheckCommand.Create());
        root.Subcommands.Add(SweepCommand.Create());
        root.Subcommands.Add(CompareCommand.Create());
        root.Subcommands.Add(ReportCommand.Create());
        root.Subcommands.Add(ListCommand.Create());
        return root;
    }

    public static int Run(string[] args) => CommandRunner.Invoke(Build(), args);
}
