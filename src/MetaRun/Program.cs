using System.CommandLine;
using MetaRun.Cli;
using MetaRun.Cli.Commands;

var root = new RootCommand("MetaRun: meta-learning experiments (MAML and kin) on libtorch");
root.Options.Add(GlobalOptions.Verbose);
root.Options.Add(GlobalOptions.DataRoot);
VersionCommand.ReplaceDefault(root);
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(DataCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
return CommandRunner.Invoke(root, args);
