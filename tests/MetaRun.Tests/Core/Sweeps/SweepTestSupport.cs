using System.Diagnostics;
using System.Security.Cryptography;
using MetaRun.Cli;
using MetaRun.Sweeps;

namespace MetaRun.Tests.Sweeps;

public static class SweepTestSupport
{
    public static string SinusoidConfig => Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml");

    /// <summary>A sweep file over the sinusoid quickstart config; <paramref name="body"/> adds grid/list/seeds.</summary>
    public static string WriteSweep(string dir, string name, string body, int iterations = 40)
    {
        var path = Path.Combine(dir, name + ".yaml");
        File.WriteAllText(path, $"""
            name: {name}
            config: {SinusoidConfig}
            out: {Path.Combine(dir, name)}
            set: [algorithm.iterations={iterations}, eval.interval={Math.Max(1, iterations / 2)}, eval.episodes=10, checkpoint.interval={Math.Max(1, iterations / 4)}, algorithm.meta_batch_size=5]
            eval: {"{"}split: test, episodes: 20{"}"}
            {body}
            """);
        return path;
    }

    /// <summary>Starts the real metarun CLI as a child process in its own process group (so a test can kill it and its children, as Ctrl-C or a reboot would).</summary>
    public static Process Start(string workDir, params string[] args)
    {
        var cli = CliInvocation.ForAssembly(typeof(MetaRunCli).Assembly.Location);
        var info = new ProcessStartInfo("setsid") { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(cli.FileName);
        foreach (var a in cli.Prefix.Concat(args)) info.ArgumentList.Add(a);
        return Process.Start(info)!;
    }

    public static (int Code, string Output) RunToEnd(string workDir, TimeSpan timeout, params string[] args)
    {
        using var p = Start(workDir, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            KillGroup(p.Id);
            throw new TimeoutException($"metarun {string.Join(" ", args)} did not finish in {timeout}");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    public static void KillGroup(int pgid)
    {
        using var kill = Process.Start("kill", ["-KILL", "--", $"-{pgid}"]);
        kill.WaitForExit();
    }

    /// <summary>Content hash and write time of every file below a folder, to prove it untouched.</summary>
    public static Dictionary<string, (string Hash, DateTime Written)> Snapshot(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(
            f => Path.GetRelativePath(dir, f),
            f => (Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))), File.GetLastWriteTimeUtc(f)));

    public static bool WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (condition()) return true;
            Thread.Sleep(200);
        }
        return condition();
    }
}
