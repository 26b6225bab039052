using System.CommandLine;

namespace MetaRun.Cli.Commands;

public static class EvalCommand
{
    public static Command Create() => new("eval", "(being written)");
}
