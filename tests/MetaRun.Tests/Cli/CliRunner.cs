using MetaRun.Cli;

namespace MetaRun.Tests.Cli;

/// <summary>
/// Tests that change what is process-wide run one at a time: the console (swapped to capture
/// output) and libtorch's threads and global seed, which train, eval and bench set.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideCollection
{
    public const string Name = "process-wide";
}

public static class CliRunner
{
    private static readonly object Gate = new();

    /// <summary>Runs metarun in-process with the given arguments; returns its exit code and output.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        lock (Gate)
        {
            var (oldOut, oldErr) = (Console.Out, Console.Error);
            var (o, e) = (new StringWriter(), new StringWriter());
            Console.SetOut(o);
            Console.SetError(e);
            try
            {
                var code = MetaRunCli.Run(args);
                return (code, o.ToString(), e.ToString());
            }
            finally
            {
                Console.SetOut(oldOut);
                Console.SetError(oldErr);
            }
        }
    }
}
