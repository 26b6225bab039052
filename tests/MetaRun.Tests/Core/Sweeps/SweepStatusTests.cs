namespace MetaRun.Tests.Sweeps;

public sealed class SweepStatusTests
{
    [Fact]
    public void StatusPipedToAScriptKeepsEveryRunNameOnOneLine()
    {
        var dir = TestPaths.NewTempDir("sweep-status");
        var file = SweepTestSupport.WriteSweep(dir, "wide",
            "grid: {algorithm.inner_lr: [0.0012345, 0.0023456], algorithm.outer_lr: [0.00098765, 0.00087654]}\nseeds: [10]", iterations: 2);
        var (code, output) = SweepTestSupport.RunToEnd(dir, TimeSpan.FromMinutes(2), "sweep", file);
        Assert.True(code == 0, output);
        (code, output) = SweepTestSupport.RunToEnd(dir, TimeSpan.FromMinutes(1), "sweep", file, "--status");
        Assert.True(code == 0, output);
        var lines = output.Split('\n');
        foreach (var name in new[] { "inner_lr=0.0012345_outer_lr=0.00098765_seed=10", "inner_lr=0.0023456_outer_lr=0.00087654_seed=10" })
            Assert.True(lines.Any(l => l.Contains(name)), output);
    }
}
