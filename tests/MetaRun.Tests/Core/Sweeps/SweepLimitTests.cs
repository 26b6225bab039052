using System.Diagnostics;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Sweeps;

/// <summary>
/// A sweep too large to run is refused up front (exit 2, the count and the limit) instead of
/// being expanded until memory runs out; a long validation stops on SIGTERM (exit 130).
/// </summary>
public sealed class SweepLimitTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    private static string Grid(string dir, int keys, int values)
    {
        var lines = string.Join("\n", new[] { "algorithm.inner_lr", "algorithm.outer_lr", "seed" }.Take(keys)
            .Select((k, i) => $"  {k}: [{string.Join(", ", Enumerable.Range(1, values).Select(v => k == "seed" ? v.ToString() : (v / 1e6).ToString("0.######", System.Globalization.CultureInfo.InvariantCulture)))}]"));
        return SweepTestSupport.WriteSweep(dir, "huge", "grid:\n" + lines);
    }

    [Fact]
    public void ABillionRunGridIsRefusedWithItsCountAndTheLimit()
    {
        var dir = TestPaths.NewTempDir("sweephuge");
        var file = Grid(dir, 3, 1000);
        var (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", file, "--launcher", "slurm", "--dry-run");
        Assert.True(code == 2, output);
        Assert.Contains("1,000,000,000 runs", output);
        Assert.Contains("limit of 10,000", output);
        Assert.Contains("--max-runs", output);
        Assert.False(Directory.Exists(Path.Combine(dir, "huge")));

        // Under the limit it is an ordinary sweep; the limit can be raised.
        (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", Grid(dir, 2, 110), "--launcher", "slurm", "--dry-run");
        Assert.True(code == 2, output);
        Assert.Contains("12,100 runs", output);
        (code, output) = SweepTestSupport.RunToEnd(dir, Limit, "sweep", Grid(dir, 2, 110), "--launcher", "slurm", "--dry-run", "--max-runs", "20000");
        Assert.True(code == 0, output);
        Assert.Contains("#SBATCH --array=0-12099", output);
    }

    [Fact]
    public async Task SigtermStopsALongValidation()
    {
        var dir = TestPaths.NewTempDir("sweepvalidate");
        var file = Grid(dir, 2, 300);
        using var sweep = SweepTestSupport.Start(dir, "sweep", file, "--launcher", "slurm", "--dry-run", "--max-runs", "100000");
        var output = sweep.StandardOutput.ReadToEndAsync();
        var error = sweep.StandardError.ReadToEndAsync();
        // Started and into the validation of its 90,000 configs (in CPU time: a loaded machine stretches the wall clock).
        ChildProcess.WaitForCpu(sweep, 3);
        using (var kill = Process.Start("kill", ["-TERM", sweep.Id.ToString()])!) kill.WaitForExit();
        if (!sweep.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            SweepTestSupport.KillGroup(sweep.Id);
            Assert.Fail("the sweep ignored SIGTERM during validation");
        }
        var (stdout, stderr) = (await output, await error);
        Assert.True(sweep.ExitCode == 130, stdout + stderr);
        Assert.Contains("interrupted", stderr);
    }
}
