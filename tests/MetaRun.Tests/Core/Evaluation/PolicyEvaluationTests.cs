using System.Text.Json;
using MetaRun.Evaluation;
using MetaRun.Tests.Distributed;
using MetaRun.Tests.Training;

namespace MetaRun.Tests.Evaluation;

/// <summary>`metarun eval` of a meta-RL run: the returns table over held-out goals for the run, its baselines and its random initialisation, and the two figures.</summary>
[Collection(MetaRun.Tests.Cli.ProcessWideCollection.Name)]
public sealed class PolicyEvaluationTests
{
    [Fact]
    public void Eval_scores_the_run_each_baseline_and_the_random_initialisation_on_the_same_goals_and_draws_both_figures()
    {
        var (_, path) = TestConfigs.Write(MetaRlTrainingTests.TinyNavigation);
        var dir = TestPaths.NewTempDir("rl-eval");
        var (run, pretrained) = (Path.Combine(dir, "maml"), Path.Combine(dir, "pretrained"));
        string[] common = ["--set", "algorithm.iterations=1", "--set", "eval.interval=0", "--set", "checkpoint.interval=1"];
        var (code, output) = Metarun.Run(["train", path, .. common, "--out", run]);
        Assert.True(code == 0, output);
        (code, output) = Metarun.Run(["train", path, .. common, "--set", "algorithm.inner_steps=0", "--set", "algorithm.test_inner_steps=1", "--out", pretrained]);
        Assert.True(code == 0, output);

        var (first, second) = (Path.Combine(dir, "a", "returns.json"), Path.Combine(dir, "b", "returns.json"));
        (code, output) = Metarun.Run(["eval", run, "--episodes", "3", "--baseline", pretrained, "--out", first]);
        Assert.True(code == 0, output);
        (code, output) = Metarun.Run(["eval", run, "--episodes", "3", "--baseline", pretrained, "--out", second]);
        Assert.True(code == 0, output);

        var policies = JsonDocument.Parse(File.ReadAllText(first)).RootElement.GetProperty("policies").EnumerateArray().ToList();
        Assert.Equal(["nav", "nav", "random init"], policies.Select(p => p.GetProperty("label").GetString()));
        Assert.All(policies, p => Assert.Equal(PolicyEvaluation.Steps + 1, p.GetProperty("mean_return").GetArrayLength()));
        // Returns are minus squared distances: negative, and the random initialisation's below the trained run's before adaptation.
        Assert.All(policies, p => Assert.All(p.GetProperty("mean_return").EnumerateArray(), r => Assert.True(r.GetDouble() < 0)));
        // Rollouts are a pure function of (seed, goal, step, trajectory): a second eval writes the same table.
        string Table(string f) => string.Join("\n", File.ReadAllLines(f).Where(l => !l.Contains("\"seconds\"")));
        Assert.Equal(Table(first), Table(second));
        foreach (var figure in new[] { "returns.png", "trajectories.png" })
            Assert.True(new FileInfo(Path.Combine(dir, "a", figure)).Length > 10_000, figure);
    }

    [Fact]
    public void The_trajectory_figure_shows_goals_far_apart_rather_than_the_first_three()
    {
        double[][] goals = [[0.9, 0.9], [0.85, 0.95], [0.1, 0.1], [0.88, 0.92], [0.1, 0.9], [0.5, 0.5]];
        Assert.Equal([0, 2, 4], PolicyEvaluation.SpreadGoals(goals, 3));
        Assert.Equal([0, 1], PolicyEvaluation.SpreadGoals(goals[..2], 3));
        Assert.Empty(PolicyEvaluation.SpreadGoals([], 3));
    }
}
