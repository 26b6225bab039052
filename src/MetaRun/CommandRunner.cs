using System.CommandLine;
using LibTorch;

namespace MetaRun.Cli;

/// <summary>
/// Runs the parsed command and turns errors into one clear line and a documented exit code
/// (stack traces only with --verbose).
/// </summary>
public static class CommandRunner
{
    public static int Invoke(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        var verbose = parse.GetValue(GlobalOptions.Verbose);
        if (parse.Errors.Count > 0)
        {
            // One line however many options are wrong: the first, and how many more there are.
            var more = parse.Errors.Count > 1 ? $" (and {parse.Errors.Count - 1} more problem{(parse.Errors.Count > 2 ? "s" : "")} on this command line)" : "";
            Console.Error.WriteLine($"metarun: {parse.Errors[0].Message}{more}");
            Console.Error.WriteLine("Run 'metarun --help' for usage.");
            return ExitCodes.BadUsage;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            var (code, message) = e switch
            {
                MetaRunException m => (m.ExitCode, m.Message),
                TorchException t => (ExitCodes.Failure, $"libtorch error: {t.Message}"),
                OperationCanceledException => (130, "interrupted"),
                // .NET's messages name the path ("No space left on device : '/x'", "Access to the path '/x' is denied.").
                IOException or UnauthorizedAccessException => (ExitCodes.IoProblem, $"cannot read or write a file: {e.Message}"),
                _ => (ExitCodes.Failure, $"{e.GetType().Name}: {e.Message}"),
            };
            Console.Error.WriteLine($"metarun: {message}");
            if (verbose) Console.Error.WriteLine(e);
            return code;
        }
    }
}
