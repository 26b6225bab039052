using System.Diagnostics;
using static MetaRun.Tests.LibTorch.DistributedTests;

namespace MetaRun.Tests.Distributed;

/// <summary>
/// Data-parallel steps between real separate processes on loopback (tests/MetaRun.DistProbe, one
/// rank each): a failed rank is named by the others.
/// </summary>
public sealed class DataParallelTests
{
    [Fact]
    public void DataParallelNamesAKilledRankAndTheMasterBeingGone()
    {
        // Rank 1 killed: rank 0 (the store's host) names it.
        var port = FreePort();
        using (var r0 = Rank.Start("dp-loop", port, 0, 2, 60_000))
        using (var r1 = Rank.Start("dp-loop", port, 1, 2, 60_000))
        {
            r1.WaitForLine("joined", TimeSpan.FromSeconds(30));
            Thread.Sleep(500);
            var clock = Stopwatch.StartNew();
            r1.Kill();
            var (code, output) = r0.Finish(TimeSpan.FromSeconds(40));
            Assert.Equal(1, code);
            Assert.Matches(@"ERROR\(1\) rank 0 of 2: the all-reduce of iteration \d+ failed: rank 1 stopped responding \(it died or hung\)", output);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed} (the timeout is 60 s)");
        }

        // Rank 0 killed: the store went with it, and rank 1 names rank 0.
        port = FreePort();
        using (var r0 = Rank.Start("dp-loop", port, 0, 2, 60_000))
        using (var r1 = Rank.Start("dp-loop", port, 1, 2, 60_000))
        {
            r0.WaitForLine("joined", TimeSpan.FromSeconds(30));
            r1.WaitForLine("joined", TimeSpan.FromSeconds(30));
            Thread.Sleep(500);
            r0.Kill();
            var (code, output) = r1.Finish(TimeSpan.FromSeconds(40));
            Assert.Equal(1, code);
            Assert.Contains("failed: rank 0, which hosts the rendezvous store, stopped responding", output);
        }
    }

    [Fact]
    public void DataParallelPassesOnARanksOwnError()
    {
        var port = FreePort();
        using var r0 = Rank.Start("dp-error", port, 0, 2, 60_000);
        using var r1 = Rank.Start("dp-error", port, 1, 2, 60_000);
        var (code, output) = r0.Finish(TimeSpan.FromSeconds(40));
        Assert.Equal(1, code);
        Assert.Contains("failed: rank 1 stopped: data file broken at episode 7", output);
        Assert.Equal(1, r1.Finish(TimeSpan.FromSeconds(10)).Code);
    }
}
