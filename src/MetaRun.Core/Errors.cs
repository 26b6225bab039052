namespace MetaRun;

/// <summary>The process exit codes of the metarun CLI (documented in the README).</summary>
public static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int BadUsage = 2;
    public const int DataProblem = 3;
    public const int CheckpointProblem = 4;
    /// <summary>Reading or writing a file failed: disk full, read-only, a missing folder.</summary>
    public const int IoProblem = 5;
}

/// <summary>An expected error a user can fix; the CLI prints its message (no stack trace) and exits with its code.</summary>
public class MetaRunException(int exitCode, string message, Exception? inner = null) : Exception(message, inner)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>A bad config file, key or value; the message names the file, key and line.</summary>
public sealed class ConfigException(string message) : MetaRunException(ExitCodes.BadUsage, message);

/// <summary>Missing, incomplete or unreadable data; the message names the file or class.</summary>
public sealed class DataException(string message, Exception? inner = null) : MetaRunException(ExitCodes.DataProblem, message, inner);

/// <summary>A missing, corrupt or mismatched checkpoint; the message names the path.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : MetaRunException(ExitCodes.CheckpointProblem, message, inner);
