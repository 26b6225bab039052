using MetaRun.Cli;

namespace MetaRun.Tests.Cli;

/// <summary>Tests that swap Console.Out/Error run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConsoleCollection
{
    public const string Name = "console";
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
