using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using LibTorch;

namespace MetaRun.Tests.LibTorch;

/// <summary>
/// The c10d binding between real separate processes on loopback (tests/MetaRun.DistProbe, one
/// rank each): collective results, and every fault ending in an error within the timeout.
/// </summary>
public sealed class DistributedTests
{
    [Fact]
    public void TwoProcessesAllReduceBroadcastAndAllGatherCorrectly()
    {
        var port = FreePort();
        using var r0 = Rank.Start("collectives", port, 0, 2, 20_000);
        using var r1 = Rank.Start("collectives", port, 1, 2, 20_000);
        foreach (var r in new[] { r0, r1 })
        {
            var (code, output) = r.Finish(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, output);
            // a = arange(5) * (rank + 1), summed over ranks 0 and 1: arange(5) * 3.
            Assert.Contains("RESULT a=0,3,6,9,12", output);
            Assert.Contains("RESULT b=30,30,30,30,30,30", output);
            Assert.Contains("RESULT c=7,7,7", output);           // broadcast from rank 1
            Assert.Contains("RESULT g=0,0,1,0.5", output);       // [rank, rank/2] gathered in rank order
        }
    }

    [Fact]
    public void APeerThatNeverJoinsEndsTheRendezvousWithinTheTimeout()
    {
        var port = FreePort();
        var clock = Stopwatch.StartNew();
        using var r0 = Rank.Start("allreduce", port, 0, 2, 2_000);
        var (code, output) = r0.Finish(TimeSpan.FromSeconds(30));
        Assert.Equal(1, code);
        Assert.Contains("ERROR rank 0 of 2 could not join the Gloo process group within 2 s", output);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
    }

    [Fact]
    public void APeerThatDiesFailsTheCollectiveLongBeforeTheTimeout()
    {
        var port = FreePort();
        using var r1 = Rank.Start("idle", port, 1, 2, 60_000);
        using var r0 = Rank.Start("allreduce", port, 0, 2, 60_000);
        r1.WaitForLine("joined", TimeSpan.FromSeconds(30));
        r0.WaitForLine("joined", TimeSpan.FromSeconds(30));
        Thread.Sleep(500); // rank 0 is now inside the all-reduce, waiting for rank 1
        var clock = Stopwatch.StartNew();
        r1.Kill();
        var (code, output) = r0.Finish(TimeSpan.FromSeconds(30));
        Assert.Equal(1, code);
        Assert.Contains("ERROR all-reduce failed on rank 0 of 2", output);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed} (the timeout is 60 s)");
    }

    [Fact]
    public void APeerThatHangsFailsTheCollectiveAtTheTimeout()
    {
        var port = FreePort();
        using var r1 = Rank.Start("idle", port, 1, 2, 3_000, gated: true);
        using var r0 = Rank.Start("allreduce", port, 0, 2, 3_000, gated: true);
        Rank.Go(r0, r1);
        r0.WaitForLine("joined", TimeSpan.FromSeconds(30));
        var clock = Stopwatch.StartNew();
        var (code, output) = r0.Finish(TimeSpan.FromSeconds(30));
        Assert.Equal(1, code);
        Assert.Contains("ERROR all-reduce failed on rank 0 of 2 (timeout 3 s)", output);
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(2) && clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
    }

    [Fact]
    public void RanksWithDifferentConfigHashesBothRefuseNamingTheOddRank()
    {
        var port = FreePort();
        using var r0 = Rank.Start("allreduce", port, 0, 2, 20_000, "hash-a");
        using var r1 = Rank.Start("allreduce", port, 1, 2, 20_000, "hash-b");
        foreach (var r in new[] { r0, r1 })
        {
            var (code, output) = r.Finish(TimeSpan.FromSeconds(60));
            Assert.Equal(1, code);
            Assert.Contains("ERROR the ranks disagree on the config hash: rank 0 has hash-a, rank 1 has hash-b", output);
            Assert.DoesNotContain("joined", output);
        }
    }

    [Fact]
    public void RanksWithEqualConfigHashesGoOn()
    {
        var port = FreePort();
        using var r0 = Rank.Start("allreduce", port, 0, 2, 20_000, "same");
        using var r1 = Rank.Start("allreduce", port, 1, 2, 20_000, "same");
        foreach (var r in new[] { r0, r1 })
        {
            var (code, output) = r.Finish(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, output);
            Assert.Contains("RESULT x=2,2,2,2", output);
        }
    }

    [Fact]
    public void ATakenPortAndAnUnreachableMasterAreExceptionsNamingTheAddress()
    {
        var taken = new TcpListener(IPAddress.Any, 0);
        taken.Start();
        try
        {
            var port = ((IPEndPoint)taken.LocalEndpoint).Port;
            var e = Assert.Throws<TorchException>(() => TcpStore.Create("127.0.0.1", port, isMaster: true, 2, TimeSpan.FromSeconds(2)));
            Assert.Contains($"cannot start the rendezvous store on 127.0.0.1:{port}", e.Message);
            Assert.Contains("Address already in use", e.Message);
        }
        finally
        {
            taken.Stop();
        }

        var free = FreePort();
        var clock = Stopwatch.StartNew();
        var e2 = Assert.Throws<TorchException>(() => TcpStore.Create("127.0.0.1", free, isMaster: false, 2, TimeSpan.FromSeconds(1)));
        Assert.Contains($"cannot reach the rendezvous store at 127.0.0.1:{free} within 1 s", e2.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
    }

    [Fact]
    public void TheStoreSetsGetsCountsAndTimesOutInOneProcess()
    {
        using var store = TcpStore.Create("127.0.0.1", 0, isMaster: true, 1, TimeSpan.FromSeconds(1));
        Assert.True(store.Port > 0);
        store.Set("k", "v");
        Assert.Equal("v", store.GetString("k"));
        Assert.Equal(3, store.Add("n", 3));
        Assert.Equal(5, store.Add("n", 2));
        Assert.True(store.Contains("k", "n"));
        Assert.False(store.Contains("absent"));
        var e = Assert.Throws<TorchException>(() => store.Get("absent"));
        Assert.Contains("absent", e.Message);
        Assert.Throws<TorchException>(() => store.Wait(["absent"], TimeSpan.FromMilliseconds(200)));

        // A world of one: collectives are identities, the group frees deterministically.
        using var group = ProcessGroup.Create(CollectiveBackend.Gloo, store, 0, 1, TimeSpan.FromSeconds(5));
        using var scope = Torch.NewScope();
        var x = Torch.Full([3], 2.5);
        group.AllReduceSum([x]);
        Assert.Equal([2.5f, 2.5f, 2.5f], x.ToArray<float>());
        Assert.Equal([[1.0, 2.0]], group.AllGather([1.0, 2.0]));
    }

    [Fact]
    public void NcclIsRefusedWithAClearMessageWhereThisBuildHasNone()
    {
        using var store = TcpStore.Create("127.0.0.1", 0, isMaster: true, 1, TimeSpan.FromSeconds(1));
        if (ProcessGroup.NcclAvailable)
            return; // a CUDA build: the NCCL path is exercised only on a machine with a GPU
        var e = Assert.Throws<TorchException>(() => ProcessGroup.Create(CollectiveBackend.Nccl, store, 0, 1, TimeSpan.FromSeconds(1), Device.Cuda(0)));
        Assert.Contains("without CUDA/NCCL", e.Message);
    }

    internal static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>One rank: a child process running the probe, its output collected as it comes.</summary>
    internal sealed class Rank : IDisposable
    {
        private readonly Process process;
        private readonly List<string> lines = new();

        private Rank(Process p)
        {
            process = p;
            p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (lines) lines.Add(e.Data); };
            p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (lines) lines.Add("stderr: " + e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
        }

        public static Rank Start(string mode, int port, int rank, int world, int timeoutMs, string? hash = null, bool gated = false)
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = gated, UseShellExecute = false };
            if (gated) psi.Environment["METARUN_PROBE_GATE"] = "1";
            foreach (var a in new[] { ProbeDll, mode, "127.0.0.1", port.ToString(CultureInfo.InvariantCulture), rank.ToString(CultureInfo.InvariantCulture),
                         world.ToString(CultureInfo.InvariantCulture), timeoutMs.ToString(CultureInfo.InvariantCulture) })
                psi.ArgumentList.Add(a);
            if (hash != null) psi.ArgumentList.Add(hash);
            return new Rank(Process.Start(psi)!);
        }

        private static string ProbeDll
        {
            get
            {
                // Same configuration and framework folders as this test assembly's own output.
                var mine = Path.GetRelativePath(Path.Combine(TestPaths.RepoRoot, "tests", "MetaRun.Tests"), AppContext.BaseDirectory);
                var dll = Path.Combine(TestPaths.RepoRoot, "tests", "MetaRun.DistProbe", mine, "MetaRun.DistProbe.dll");
                return File.Exists(dll) ? dll : throw new FileNotFoundException("the probe is not built (it builds with the solution)", dll);
            }
        }

        private string Output { get { lock (lines) return string.Join("\n", lines); } }

        public void WaitForLine(string line, TimeSpan within)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < within)
            {
                lock (lines) if (lines.Contains(line)) return;
                if (process.HasExited) break;
                Thread.Sleep(20);
            }
            throw new TimeoutException($"no '{line}' within {within}: {Output}");
        }

        public (int Code, string Output) Finish(TimeSpan within)
        {
            if (!process.WaitForExit(within)) throw new TimeoutException($"the rank did not exit within {within}: {Output}");
            process.WaitForExit(); // drains the redirected output
            return (process.ExitCode, Output);
        }

        public void Kill() => process.Kill();

        /// <summary>Lets gated ranks start together once every one of them has loaded.</summary>
        public static void Go(params Rank[] ranks)
        {
            foreach (var r in ranks) r.WaitForLine("ready", TimeSpan.FromSeconds(60));
            foreach (var r in ranks) r.process.StandardInput.WriteLine("go");
        }

        public void Dispose()
        {
            if (!process.HasExited) process.Kill();
            process.Dispose();
        }
    }
}
