using MetaRun.Sweeps;

namespace MetaRun.Tests.Sweeps;

public sealed class SweepSpecTests
{
    [Fact]
    public void GridListAndSeedsExpandInOrderWithNamesFromTheVaryingKeys()
    {
        var dir = TestPaths.NewTempDir("sweepspec");
        var file = SweepTestSupport.WriteSweep(dir, "expand", """
            grid:
              algorithm.inner_lr: [0.01, 0.02]
              algorithm.outer_lr: [0.001]
            list:
              - {algorithm.inner_steps: 1}
              - {algorithm.inner_steps: 2, model.hidden: [20, 20]}
            seeds: [3, 4]
            """);
        var runs = SweepSpec.Load(file).ExpandAndValidate();

        Assert.Equal(2 * 2 * 2, runs.Count);
        Assert.Equal(Enumerable.Range(0, 8), runs.Select(r => r.Index));
        Assert.Equal([1, 1, 2, 2, 3, 3, 4, 4], runs.Select(r => r.Combination));
        // outer_lr is the same everywhere, so it is set but not part of the names.
        Assert.Equal("inner_lr=0.01_inner_steps=1_hidden=_seed=3", runs[0].Name);
        Assert.Equal("inner_lr=0.02_inner_steps=2_hidden=20-20_seed=4", runs[7].Name);
        Assert.Equal(["algorithm.iterations=40", "eval.interval=20", "eval.episodes=10", "checkpoint.interval=10", "algorithm.meta_batch_size=5",
            "algorithm.inner_lr=0.02", "algorithm.outer_lr=0.001", "algorithm.inner_steps=2", "model.hidden=[20, 20]", "seed=4"], runs[7].Sets);
        Assert.Equal(runs.Count, runs.Select(r => r.Name).Distinct().Count());
    }

    [Fact]
    public void ABadValueInCombination37FailsValidationNamingTheKeyAndTheCombination()
    {
        var dir = TestPaths.NewTempDir("sweepspec");
        var file = SweepTestSupport.WriteSweep(dir, "bad", """
            grid:
              algorithm.inner_lr: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, -1]
              algorithm.outer_lr: [0.001, 0.002, 0.003, 0.004]
            seeds: [1, 2]
            """);
        var e = Assert.Throws<ConfigException>(() => SweepSpec.Load(file).ExpandAndValidate());
        Assert.Contains("combination 37 of 40", e.Message);
        Assert.Contains("inner_lr=-1", e.Message);
        Assert.Contains("'algorithm.inner_lr' is -1", e.Message);
    }
}

