using System.Diagnostics;

namespace MetaRun.Tests.Scripts;

/// <summary>
/// scripts/setup.sh on a machine missing packages. The real script runs with
/// stand-ins for dpkg-query (reports every package missing), id (root), apt-get (700 lines of
/// dpkg-like output, failing on request) and dotnet (a build that succeeds), so nothing is
/// installed on the machine running the test.
/// </summary>
public class SetupScriptTests
{
    private static (int Code, string Err, string Log) RunSetup(bool installFails)
    {
        var dir = TestPaths.NewTempDir("setup");
        var bin = Directory.CreateDirectory(Path.Combine(dir, "bin")).FullName;
        void Tool(string name, string body)
        {
            var path = Path.Combine(bin, name);
            File.WriteAllText(path, "#!/usr/bin/env bash\n" + body + "\n");
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        Tool("dpkg-query", "exit 1");
        Tool("id", "echo 0");
        Tool("dotnet", "exit 0");
        Tool("apt-get", $$"""
            for i in $(seq 1 350); do echo "Unpacking libfoo$i (1.0-1) ..."; echo "Setting up libfoo$i (1.0-1) ..."; done
            if [ "$1" = install ] && [ "{{(installFails ? "1" : "0")}}" = 1 ]; then echo "E: Sub-process /usr/bin/dpkg returned an error code (1)"; exit 100; fi
            exit 0
            """);
        var log = Path.Combine(dir, "setup.log");
        var psi = new ProcessStartInfo("bash") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(TestPaths.RepoRoot, "scripts", "setup.sh"));
        psi.ArgumentList.Add("MetaRun.sln"); // a target other than the CLI: the .built stamp is left alone
        psi.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
        psi.Environment["METARUN_SETUP_LOG"] = log;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(60_000), "setup.sh hangs");
        Assert.Equal("", output);
        return (p.ExitCode, err.Result, File.ReadAllText(log));
    }

    [Fact]
    public void PackageOutputGoesToALogAndEachStepIsOneLine()
    {
        var (code, err, log) = RunSetup(installFails: false);
        Assert.True(code == 0, err);
        var lines = err.Trim().Split('\n');
        Assert.True(lines.Length <= 3, err); // apt-get update, apt-get install, building
        Assert.Contains(lines, l => l.Contains("installing libtorch-dev") && l.Contains(" s (log: ") && l.Contains("setup.log"));
        Assert.DoesNotContain("Unpacking", err);
        Assert.Equal(700 * 2, log.Split('\n').Count(l => l.StartsWith("Unpacking", StringComparison.Ordinal) || l.StartsWith("Setting up", StringComparison.Ordinal)));
    }

    [Fact]
    public void AFailedInstallShowsTheLogsLastLinesAndExitsTen()
    {
        var (code, err, _) = RunSetup(installFails: true);
        Assert.Equal(10, code);
        Assert.Contains("installing libtorch-dev", err);
        Assert.Contains("failed (exit 100", err);
        Assert.Contains("E: Sub-process /usr/bin/dpkg returned an error code (1)", err);
        Assert.True(err.Trim().Split('\n').Length < 25, err);
    }
}
