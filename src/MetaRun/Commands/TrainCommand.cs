using System.CommandLine;

namespace MetaRun.Cli.Commands;

public static class TrainCommand
{
    public static Command Create() => new("train", "(being written)");
}
