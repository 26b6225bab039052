using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Algorithms;

/// <summary>The bit-identical resume check of a learner through the real command line.</summary>
internal static class ResumeCheck
{
    /// <summary>
    /// Trains <paramref name="configPath"/> 4 iterations straight, and 2 then 2 more after a
    /// resume (checkpoints every 2): the weights and the metrics rows, bar the wall-clock seconds
    /// column, must be the same to the bit.
    /// </summary>
    public static void AssertResumedEqualsStraight(string dir, string configPath)
    {
        string Train(string name, int iterations, bool resume)
        {
            var run = Path.Combine(dir, name);
            var (code, _, err) = resume
                ? CliRunner.Run("train", configPath, "--resume", run, "--set", $"algorithm.iterations={iterations}")
                : CliRunner.Run("train", configPath, "--out", run, "--set", $"algorithm.iterations={iterations}");
            Assert.True(code == 0, err);
            return run;
        }
        static byte[] Weights(string run)
        {
            using var c = MetaRun.Training.Checkpoint.Load(Path.Combine(run, "checkpoints", "last.safetensors"));
            return [.. c.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToBytes())];
        }
        static string[] Rows(string run)
        {
            var lines = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
            var seconds = Array.IndexOf(lines[0].Split(','), "seconds");
            return [.. lines.Select(l => string.Join(',', l.Split(',').Where((_, i) => i != seconds)))];
        }
        var straight = Train("straight", 4, resume: false);
        Train("resumed", 2, resume: false);
        var resumed = Train("resumed", 4, resume: true);
        Assert.Equal(Weights(straight), Weights(resumed));
        Assert.Equal(Rows(straight), Rows(resumed));
    }
}
