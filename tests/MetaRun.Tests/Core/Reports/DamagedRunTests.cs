using System.Text;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Reports;

/// <summary>
/// compare and report on runs as disks leave them: a metrics.csv with a NUL-filled tail (power
/// loss) or another header is read as far as it goes with a warning naming the file and line,
/// never failing the comparison; a copied run folder is one run, not another seed.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class DamagedRunTests
{
    private static readonly string Config = Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml");

    private static string Train(string dir, string name, int seed)
    {
        var run = Path.Combine(dir, name);
        var (code, _, err) = CliRunner.Run("train", Config, "--out", run, "--set", "algorithm.iterations=20", "--set", "eval.interval=10",
            "--set", "eval.episodes=5", "--set", "checkpoint.interval=10", "--set", "algorithm.meta_batch_size=2", "--set", $"seed={seed}");
        Assert.True(code == 0, err);
        return run;
    }

    [Fact]
    public void DamagedMetricsAreReadAsFarAsTheyGoAndACopyIsOneRun()
    {
        var dir = TestPaths.NewTempDir("damaged");
        var a = Train(dir, "a", 1);
        var b = Train(dir, "b", 2);
        var c = Train(dir, "c", 3);
        using (var f = new FileStream(Path.Combine(b, "metrics.csv"), FileMode.Append)) f.Write(new byte[4096]);
        var lines = File.ReadAllLines(Path.Combine(c, "metrics.csv"));
        lines[0] = "step,loss,accuracy";
        File.WriteAllLines(Path.Combine(c, "metrics.csv"), lines);

        var (code, output, err) = CliRunner.Run("compare", dir, "--format", "csv");
        Assert.True(code == 0, err);
        Assert.Contains($"{Path.Combine(b, "metrics.csv")}:22: unreadable row (NUL bytes", err);
        Assert.Contains($"{Path.Combine(c, "metrics.csv")}:1: the header has no 'iteration' column", err);
        Assert.EndsWith(",3", output.Trim()); // one row, three seeds

        var html = Path.Combine(dir, "report.html");
        (code, _, err) = CliRunner.Run("report", dir, "--out", html);
        Assert.True(code == 0, err);
        Assert.Contains("unreadable row", err);

        // A copy of run a is the same run: still three seeds, and said so.
        CopyDir(a, Path.Combine(dir, "a.bak"));
        (code, output, err) = CliRunner.Run("compare", dir, "--format", "csv");
        Assert.True(code == 0, err);
        Assert.EndsWith(",3", output.Trim());
        Assert.Contains("has the same config and seed as", err);
        Assert.Contains("counted once", err);
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var dest = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(f, dest);
        }
    }
}
