using System.CommandLine;

namespace MetaRun.Cli.Commands;

public static class BenchCommand
{
    public static Command Create() => new("bench", "(being written)");
}
