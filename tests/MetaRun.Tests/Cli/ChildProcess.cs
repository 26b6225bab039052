using System.Diagnostics;

namespace MetaRun.Tests.Cli;

/// <summary>
/// Runs the real metarun as a separate process (the build's metarun.dll beside the tests): what
/// would kill the process (a stack overflow, a signal) must not take the test host with it.
/// </summary>
public static class ChildProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "metarun.dll");

    public static Process Start(IEnumerable<string> args, string? workDir = null, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDir ?? Environment.CurrentDirectory,
        };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet");
    }

    /// <summary>Runs to the end (killed and failed after <paramref name="timeout"/>); exit code and both outputs.</summary>
    public static (int Code, string Out, string Err) Run(IEnumerable<string> args, string? workDir = null, IReadOnlyDictionary<string, string>? env = null, TimeSpan? timeout = null)
    {
        using var p = Start(args, workDir, env);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            throw new TimeoutException($"metarun {string.Join(' ', args)} did not finish in time (it hangs): {stderr.Result}");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
