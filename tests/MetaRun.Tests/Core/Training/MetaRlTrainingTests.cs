using MetaRun.Config;
using MetaRun.Training;
using MetaRun.Tests.Distributed;
using Serilog.Core;

namespace MetaRun.Tests.Training;

/// <summary>Meta-RL through the ordinary trainer: TRPO and the optimizer outer step learn, resume bit for bit, and two processes match one; eval stays in one process.</summary>
[Collection(MetaRun.Tests.Cli.ProcessWideCollection.Name)]
public sealed class MetaRlTrainingTests
{
    public const string TinyNavigation = """
        name: nav
        data:
          dataset: navigation2d
        model:
          hidden: [16, 16]
        algorithm:
          name: maml-rl
          inner_lr: 0.1
          trajectories: 4
          meta_batch_size: 4
          iterations: 6
        eval:
          interval: 3
          episodes: 4
        checkpoint:
          interval: 3
        threads: 1
        """;

    private static RunConfig Config(int iterations, params string[] sets)
    {
        var (_, path) = TestConfigs.Write(TinyNavigation);
        return ConfigLoader.Load(path, [$"algorithm.iterations={iterations}", .. sets]);
    }

    private static void Train(string dir, RunConfig config, bool resume)
    {
        using var experiment = Experiment.Create(config, null);
        using var checkpoint = resume ? Checkpoint.Load(Path.Combine(dir, "checkpoints", "last.safetensors")) : null;
        new Trainer(experiment, RunDirectory.At(dir), Logger.None).Run(checkpoint);
    }

    private static Dictionary<string, float[]> Weights(string dir)
    {
        using var c = Checkpoint.Load(Path.Combine(dir, "checkpoints", "last.safetensors"));
        return c.Parameters.ToDictionary(p => p.Key, p => p.Value.ToArray<float>());
    }

    private static IEnumerable<string> Rows(string dir) => File.ReadAllLines(Path.Combine(dir, "metrics.csv")).Select(l => string.Join(',', l.Split(',').Where((_, i) => i != 6)));

    [Theory]
    [InlineData("maml-rl", "0.01")]
    [InlineData("fomaml-rl", "0")]
    public void An_interrupted_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one(string algorithm, string maxKl)
    {
        string[] sets = [$"algorithm.name={algorithm}", $"algorithm.trpo_max_kl={maxKl}", "algorithm.outer_lr=0.01"];
        var straight = TestPaths.NewTempDir("rl-straight");
        Train(straight, Config(6, sets), resume: false);
        var resumed = TestPaths.NewTempDir("rl-resumed");
        Train(resumed, Config(3, sets), resume: false);
        Train(resumed, Config(6, sets), resume: true);
        var (a, b) = (Weights(straight), Weights(resumed));
        Assert.Contains("policy.log_std", a.Keys);
        foreach (var k in a.Keys) Assert.Equal(a[k], b[k]);
        Assert.Equal(Rows(straight), Rows(resumed));
        var header = File.ReadLines(Path.Combine(straight, "metrics.csv")).First();
        Assert.EndsWith("return_before,return_after", header);
    }

    [Fact]
    public void The_trust_region_step_moves_the_policy_and_raises_the_return_after_adaptation()
    {
        var dir = TestPaths.NewTempDir("rl-learns");
        var config = Config(8);
        config.Model.Hidden = [32, 32];
        Train(dir, config, resume: false);
        var rows = File.ReadAllLines(Path.Combine(dir, "metrics.csv")).Skip(1).Select(l => l.Split(',')).ToList();
        double After(string[] r) => double.Parse(r[^1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(rows.Skip(5).Average(After) > rows.Take(3).Average(After), string.Join("\n", rows.Select(r => string.Join(',', r))));
    }

    /// <summary>
    /// One process with two workers against two processes with one each (real ranks through --nproc).
    /// TRPO's conjugate gradient turns a last-bit difference in a sum into a visibly different step,
    /// so it sums every task's values in task order at any process count; the optimizer step
    /// takes the all-reduced gradient, equal up to summation order.
    /// </summary>
    [Theory]
    [InlineData("maml-rl", "0.01")]
    [InlineData("fomaml-rl", "0")]
    public void Two_processes_match_one_within_a_millionth(string algorithm, string maxKl)
    {
        var (_, path) = TestConfigs.Write(TinyNavigation);
        string[] settings = ["--set", "algorithm.iterations=4", "--set", $"algorithm.name={algorithm}", "--set", $"algorithm.trpo_max_kl={maxKl}", "--set", "algorithm.outer_lr=0.01"];
        var one = TestPaths.NewTempDir("rl-one");
        var (code, output) = Metarun.Run(["train", path, .. settings, "--set", "workers=2", "--out", one]);
        Assert.True(code == 0, output);
        var two = TestPaths.NewTempDir("rl-two");
        (code, output) = Metarun.Run(["train", path, .. settings, "--set", "workers=1", "--set", "distributed.timeout=60", "--out", two, "--nproc", "2"]);
        Assert.True(code == 0, output);
        var (a, b) = (Weights(one), Weights(two));
        Assert.Equal(a.Keys, b.Keys);
        foreach (var k in a.Keys)
        {
            var diff = a[k].Zip(b[k], (x, y) => Math.Abs(x - y)).Max();
            var scale = a[k].Max(Math.Abs);
            Assert.True(diff <= 1e-6 * Math.Max(1, scale), $"{k}: largest difference {diff}");
        }
        // The returns before and after adaptation, gathered over the ranks, are the same rollouts'.
        double[] Returns(string dir) => [.. File.ReadLines(Path.Combine(dir, "metrics.csv")).Skip(1)
            .SelectMany(l => l.Split(',')[^2..]).Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture))];
        Assert.Equal(Returns(one), Returns(two), (x, y) => Math.Abs(x - y) <= 1e-6 * Math.Abs(x));
    }

    [Fact]
    public void Eval_of_a_policy_over_several_processes_is_refused_in_one_line_and_writes_nothing()
    {
        var (_, path) = TestConfigs.Write(TinyNavigation);
        var run = TestPaths.NewTempDir("rl-eval-nproc");
        var (code, output) = Metarun.Run(["train", path, "--set", "algorithm.iterations=1", "--set", "eval.interval=0", "--set", "checkpoint.interval=1", "--out", run]);
        Assert.True(code == 0, output);
        var json = Path.Combine(run, "nproc.json");
        (code, output) = Metarun.Run(["eval", run, "--episodes", "2", "--out", json, "--nproc", "2"]);
        Assert.True(code == 2, output);
        Assert.Equal("metarun: eval of a meta-RL run does not share its goals out among processes; run it in one process (drop --nproc)", output.Trim());
        Assert.False(File.Exists(json));
    }
}
