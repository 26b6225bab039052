using System.Diagnostics;

namespace MetaRun.Tests.Cli;

/// <summary>
/// Runs the real metarun as a separate process (the build's metarun.dll beside the tests): what
/// would kill the process (a stack overflow, a signal) must not take the test host with it.
/// </summary>
public static class ChildProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "metarun.dll");

    public static Process Start(IEnumerable<string> args, string? workDir = null, IReadOnlyDictionary<string, string>? env = null, string[]? wrapper = null)
    {
        var psi = new ProcessStartInfo(wrapper?[0] ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDir ?? Environment.CurrentDirectory,
        };
        if (wrapper != null)
        {
            foreach (var w in wrapper.Skip(1)) psi.ArgumentList.Add(w);
            psi.ArgumentList.Add("dotnet");
        }
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet");
    }

    /// <summary>
    /// Runs as a user without privileges: as root (CI), through setpriv as nobody, since root
    /// reads a file whatever its mode; otherwise as the current user. Whatever it writes must go
    /// to a folder everyone may write.
    /// </summary>
    public static (int Code, string Out, string Err) RunUnprivileged(IEnumerable<string> args, string writable, TimeSpan? timeout = null)
    {
        var env = new Dictionary<string, string> { ["HOME"] = writable, ["METARUN_CACHE_DIR"] = Path.Combine(writable, "cache") };
        if (!Environment.IsPrivilegedProcess) return Run(args, writable, env, timeout);
        return Run(args, writable, env, timeout, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
    }

    /// <summary>Runs to the end (killed and failed after <paramref name="timeout"/>); exit code and both outputs.</summary>
    /// <param name="wrapper">A command that runs dotnet for it (setpriv …), or none.</param>
    public static (int Code, string Out, string Err) Run(IEnumerable<string> args, string? workDir = null, IReadOnlyDictionary<string, string>? env = null, TimeSpan? timeout = null, string[]? wrapper = null)
    {
        using var p = Start(args, workDir, env, wrapper);
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

    /// <summary>
    /// Waits until <paramref name="p"/> has used <paramref name="seconds"/> of CPU time (or exited,
    /// or two minutes passed): "well into its work" measured in CPU time, which a loaded machine
    /// does not stretch the way it stretches the wall clock.
    /// </summary>
    public static void WaitForCpu(Process p, double seconds)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromMinutes(2))
        {
            p.Refresh();
            if (p.HasExited || p.TotalProcessorTime.TotalSeconds >= seconds) return;
            Thread.Sleep(100);
        }
    }
}
