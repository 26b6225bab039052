using Spectre.Console;

namespace MetaRun.Cli;

/// <summary>
/// The width tables are laid out for. Piped, Spectre assumes 80 columns and wraps numbers and
/// names across lines, which no script can read back; COLUMNS, when set, wins.
/// </summary>
public static class TableWidth
{
    public static void Apply()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var columns) && columns > 0) AnsiConsole.Profile.Width = columns;
        else if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 1000;
    }
}
