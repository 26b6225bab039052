namespace MetaRun;

/// <summary>
/// Commands MetaRun prints for the user to paste (resume, evaluate): spelled with the name the
/// user started MetaRun by and quoted for a POSIX shell, so they run as printed from the same folder.
/// </summary>
public static class ShellCommand
{
    /// <summary>How the user started MetaRun: the launcher script exports its own path as typed ("./metarun", a bundle's path); "metarun" otherwise.</summary>
    public static string Launcher => Environment.GetEnvironmentVariable("METARUN_LAUNCHER") is { Length: > 0 } l ? l : "metarun";

    /// <summary>The launcher followed by the arguments, each quoted where the shell would split or expand it.</summary>
    public static string Of(params IEnumerable<string> args) => string.Join(" ", new[] { Launcher }.Concat(args).Select(Quote));

    /// <summary>The arguments MetaRun was started with, as one pasteable line.</summary>
    public static string Current => Of(Environment.GetCommandLineArgs().Skip(1));

    public static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:+,@%".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";
}
