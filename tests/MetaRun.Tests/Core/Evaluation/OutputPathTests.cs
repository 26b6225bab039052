using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Evaluation;

/// <summary>
/// eval and adapt never write over what they read or what a run folder keeps: such an output is
/// refused (exit 2, both paths named) before anything is written, and the run still resumes.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class OutputPathTests : IDisposable
{
    private readonly SmallImageRun fixture = new("outputs");

    public void Dispose() => fixture.Dispose();

    private static byte[] Snapshot(string run) =>
        [.. File.ReadAllBytes(Path.Combine(run, "checkpoints", "last.safetensors")), .. File.ReadAllBytes(Path.Combine(run, "metrics.csv"))];

    [Fact]
    public void OutputsThatWouldDestroyARunOrAnInputAreRefused()
    {
        var run = fixture.Train();
        var last = Path.Combine(run, "checkpoints", "last.safetensors");
        var before = Snapshot(run);
        var (support, query) = fixture.SupportAndQuery();
        var elsewhere = Path.Combine(fixture.Dir, "out");

        var cases = new (string[] Args, string[] Named)[]
        {
            (["eval", "--checkpoint", last, "--out", last, "--episodes", "2"], [last]),
            (["eval", "--checkpoint", run, "--out", Path.Combine(run, "metrics.csv"), "--episodes", "2"], [Path.Combine(run, "metrics.csv")]),
            (["eval", "--checkpoint", run, "--out", Path.Combine(run, "config.yaml"), "--episodes", "2"], [Path.Combine(run, "config.yaml")]),
            (["adapt", "--checkpoint", run, "--support", support, "--save-adapted", last], [last]),
            (["adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", elsewhere + ".csv", "--save-adapted", elsewhere + ".csv"], [elsewhere + ".csv"]),
            (["adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", elsewhere + ".csv", "--save-adapted", elsewhere + ".json"], [elsewhere + ".json"]),
            (["adapt", "--checkpoint", run, "--support", support, "--query", query, "--out", Path.Combine(support, "p.csv")], [support]),
        };
        foreach (var (args, named) in cases)
        {
            var (code, _, err) = CliRunner.Run(args);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}, {err}");
            foreach (var n in named) Assert.Contains(n, err);
            Assert.Equal(before, Snapshot(run));
        }
        Assert.False(File.Exists(elsewhere + ".csv"));

        // Through a symbolic link too.
        var link = Path.Combine(fixture.Dir, "alias.safetensors");
        File.CreateSymbolicLink(link, last);
        Assert.Equal(2, CliRunner.Run("eval", "--checkpoint", run, "--out", link, "--episodes", "2").Code);
        Assert.Equal(before, Snapshot(run));

        // The run is intact: it resumes, and eval's own eval.json beside the checkpoint is still fine.
        var (c2, _, e2) = CliRunner.Run("eval", "--checkpoint", run, "--episodes", "2");
        Assert.True(c2 == 0, e2);
        var (c3, _, e3) = CliRunner.Run("train", fixture.Config(), "--resume", run, "--set", "algorithm.iterations=4");
        Assert.True(c3 == 0, e3);
    }
}
