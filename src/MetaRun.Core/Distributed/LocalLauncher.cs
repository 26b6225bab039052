using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace MetaRun.Distributed;

/// <summary>
/// `--nproc N`: starts N copies of this same command on this machine with torchrun's variables
/// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and supervises them,
/// like `torchrun --standalone`. Rank 0's console output is passed through; every rank's errors
/// are. When one rank fails the others fail their next collective and exit by themselves; any
/// still running after the collective timeout and a grace period are killed.
/// </summary>
public static class LocalLauncher
{
    /// <summary>Runs the ranks to the end; returns the exit code for the whole run.</summary>
    public static int Run(int nproc, IReadOnlyList<string> childArgs, TimeSpan collectiveTimeout, TextWriter stdout, TextWriter stderr)
    {
        var port = FreePort();
        var ranks = new List<Process>();
        // SIGINT and SIGTERM reach the supervisor (and, from a terminal or scancel, the ranks too,
        // which leave them to it): the first is passed on once, as a stop request each rank
        // answers by finishing its iteration and saving; the second kills the ranks.
        var stopCode = 0;
        var signals = 0;
        void OnSignal(PosixSignalContext c)
        {
            c.Cancel = true;
            var code = c.Signal == PosixSignal.SIGINT ? 130 : 143;
            var name = code == 130 ? "interrupted (SIGINT)" : "terminated (SIGTERM)";
            lock (ranks)
            {
                if (signals++ == 0)
                {
                    stopCode = code;
                    lock (stderr) stderr.WriteLine($"metarun: {name}: the {nproc} ranks finish this iteration and save checkpoints/last; send it again to stop at once");
                    foreach (var p in ranks.Where(p => !p.HasExited))
                        try { p.StandardInput.WriteLine($"{RankSupervision.StopLine} {code}"); p.StandardInput.Flush(); }
                        catch (IOException) { }
                    return;
                }
                lock (stderr) stderr.WriteLine($"metarun: {name} again: stopping the ranks now; the run resumes from its last checkpoint");
                foreach (var p in ranks.Where(p => !p.HasExited)) p.Kill();
            }
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        try
        {
            lock (ranks)
                for (var rank = 0; rank < nproc; rank++)
                    ranks.Add(Start(rank, nproc, port, childArgs, rank == 0 ? stdout : null, stderr));

            // Wait for the first rank to end; after a failure, the others get the collective
            // timeout (plus a grace period for their own diagnosis) to end by themselves.
            var exits = ranks.Select(p => p.WaitForExitAsync()).ToArray();
            var firstFailure = -1;
            var deadline = (DateTime?)null;
            while (ranks.Any(p => !p.HasExited))
            {
                Task.WaitAny(exits.Where(t => !t.IsCompleted).ToArray(), TimeSpan.FromMilliseconds(200));
                for (var r = 0; r < nproc && firstFailure < 0; r++)
                    if (ranks[r].HasExited && ranks[r].ExitCode != 0)
                    {
                        firstFailure = r;
                        deadline = DateTime.UtcNow + collectiveTimeout + TimeSpan.FromSeconds(30);
                    }
                if (deadline != null && DateTime.UtcNow > deadline)
                {
                    foreach (var (p, r) in ranks.Select((p, r) => (p, r)).Where(x => !x.p.HasExited))
                    {
                        stderr.WriteLine($"metarun: rank {r} did not exit within the collective timeout after rank {firstFailure} failed; killing it");
                        p.Kill();
                    }
                }
            }
            foreach (var p in ranks) p.WaitForExit(); // drains redirected output

            // Stopped on request: the ranks saved and said so (or were killed on the second signal).
            if (stopCode != 0 && ranks.All(p => p.ExitCode is 0 or 130 or 143 or 137)) return stopCode;
            if (firstFailure < 0) return ExitCodes.Success;
            var code = ranks[firstFailure].ExitCode;
            // Exit codes above 128 are a signal's (137: SIGKILL): the rank printed nothing itself.
            if (code > 128)
            {
                stderr.WriteLine($"metarun: rank {firstFailure} of {nproc} was killed by signal {code - 128}");
                return ExitCodes.Failure;
            }
            return code;
        }
        finally
        {
            foreach (var p in ranks)
            {
                if (!p.HasExited) p.Kill();
                p.Dispose();
            }
        }
    }

    private static Process Start(int rank, int world, int port, IReadOnlyList<string> args, TextWriter? stdout, TextWriter stderr)
    {
        // Standard input is the pipe each rank watches to die with this supervisor (RankSupervision).
        var psi = new ProcessStartInfo { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        // This very program: the apphost, or `dotnet metarun.dll` when started through dotnet.
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which program is running");
        psi.FileName = host;
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
            psi.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()?.Location ?? throw new InvalidOperationException("no entry assembly"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        var env = psi.Environment;
        env["RANK"] = rank.ToString(CultureInfo.InvariantCulture);
        env["LOCAL_RANK"] = rank.ToString(CultureInfo.InvariantCulture);
        env["WORLD_SIZE"] = world.ToString(CultureInfo.InvariantCulture);
        env["LOCAL_WORLD_SIZE"] = world.ToString(CultureInfo.InvariantCulture);
        env["MASTER_ADDR"] = "127.0.0.1";
        env["MASTER_PORT"] = port.ToString(CultureInfo.InvariantCulture);
        env[RankSupervision.Variable] = "1";
        env.Remove(Training.SupervisedStop.Variable);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start rank " + rank);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data != null && stdout != null) lock (stdout) stdout.WriteLine(e.Data);
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data != null) lock (stderr) stderr.WriteLine(e.Data);
        };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>
    /// A port free right now on loopback. Another program could take it before rank 0 binds it;
    /// rank 0 then fails its rendezvous with "address already in use" (exit 2) and says so.
    /// </summary>
    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
