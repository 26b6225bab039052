using System.CommandLine;

namespace MetaRun.Cli.Commands;

public static class DataCommand
{
    public static Command Create() => new("data", "(being written)");
}
