using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Reports;

/// <summary>compare's table piped to a file keeps every row on one line (no number wrapped at 80 columns); COLUMNS is honoured.</summary>
public sealed class CompareWidthTests
{
    [Fact]
    public void APipedTableDoesNotWrapAndColumnsIsHonoured()
    {
        var dir = TestPaths.NewTempDir("width");
        var config = Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml");
        foreach (var (name, lr) in new[] { ("first-run-with-a-long-name", "0.001"), ("second-run-with-a-long-name", "0.003") })
        {
            var r = ChildProcess.Run(["train", config, "--out", Path.Combine(dir, name), "--set", "algorithm.iterations=4", "--set", "eval.interval=2",
                "--set", "eval.episodes=3", "--set", "checkpoint.interval=2", "--set", $"algorithm.outer_lr={lr}", "--set", "algorithm.meta_batch_size=2"]);
            Assert.True(r.Code == 0, r.Err);
        }
        var (code, output, err) = ChildProcess.Run(["compare", dir], env: new Dictionary<string, string> { ["COLUMNS"] = "" });
        Assert.True(code == 0, err);
        var rows = output.Split('\n').Where(l => l.Contains("0.001") || l.Contains("0.003")).ToArray();
        Assert.Equal(2, rows.Length);
        // Borders, header, separator and one line per run: no cell wrapped onto a second line
        // (the footnote under the table says which evaluation the test column holds).
        Assert.True(output.Split('\n').Count(l => l.Length > 0 && "┌│├└".Contains(l[0])) == 6, output);
        var widest = output.Split('\n').Max(l => l.TrimEnd().Length);

        (code, output, err) = ChildProcess.Run(["compare", dir], env: new Dictionary<string, string> { ["COLUMNS"] = "50" });
        Assert.True(code == 0, err);
        Assert.True(output.Split('\n').Max(l => l.TrimEnd().Length) <= 50, output);
        Assert.True(widest > 50, "the table is narrow anyway; the COLUMNS check proves nothing");
    }
}
