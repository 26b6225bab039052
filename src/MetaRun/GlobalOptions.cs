using System.CommandLine;

namespace MetaRun.Cli;

/// <summary>Options every subcommand accepts.</summary>
public static class GlobalOptions
{
    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Show stack traces and debug logging",
        Recursive = true,
    };

    public static readonly Option<string?> DataRoot = new("--data-root")
    {
        Description = "Folder holding the data sets (omniglot/, miniimagenet/); overrides data.root and METARUN_DATA_ROOT",
        Recursive = true,
    };
}
