using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Training;

namespace MetaRun.Evaluation;

/// <summary>The average return of one policy before and after each adaptation step, over the held-out goals.</summary>
/// <param name="Paths">For three well-spread goals among the first ten: the goal and, before adaptation and after each step, one trajectory's positions.</param>
public sealed record ReturnCurve(string Label, string? Checkpoint, Summary[] Steps, IReadOnlyList<(double[] Goal, double[][][] Paths)> Paths);

/// <summary>What `metarun eval` of a meta-RL run found: a curve per policy and where the table and figures went.</summary>
public sealed record PolicyEvaluationResult(IReadOnlyList<ReturnCurve> Curves, int Goals, int Trajectories, double FirstLr, double LaterLr, long Iteration,
    double Seconds, string Json, IReadOnlyList<string> Figures);

/// <summary>
/// Meta-testing a meta-RL run as Finn et al. (2017, section 5.3): on held-out goals (the test
/// split's), the average return before adaptation and after 1, 2 and 3 policy-gradient steps of
/// 40 trajectories each, step size 0.1 then 0.05; each policy's curve with its 95% interval over
/// the goals. Beside the run's policy: the same network at its random initialisation (the
/// paper's "random"), fine-tuned the same way, and any baseline runs given (pretrained, oracle),
/// evaluated on the same goals with the same budget.
/// </summary>
public static class PolicyEvaluation
{
    public const int Steps = 3, TrajectoriesPerStep = 40, FigureGoals = 3, FigureCandidates = 10;
    public const double FirstLr = 0.1, LaterLr = 0.05;
    public const string ResultFile = "returns.json";

    /// <summary>Whether the checkpoint is of a run whose tasks are environments.</summary>
    public static bool Applies(string checkpointPath)
    {
        using var c = Checkpoint.Load(RunDirectory.ResolveCheckpoint(checkpointPath));
        return c.Config.Data.Dataset.IsEnvironment();
    }

    public static PolicyEvaluationResult Run(string checkpointPath, IReadOnlyList<string> baselines, int goals, string? dataRoot, string? outJson, Action<string>? log = null)
    {
        var clock = Stopwatch.StartNew();
        var file = RunDirectory.ResolveCheckpoint(checkpointPath);
        using var checkpoint = Checkpoint.Load(file);
        var config = checkpoint.Config;
        Experiment.ApplyProcessSettings(config);
        var curves = new List<ReturnCurve>();
        using (var experiment = Experiment.Create(config, dataRoot))
        {
            // Before loading the checkpoint the learner holds the run's initial weights: the random baseline.
            var random = Curve(experiment, "random init", null, goals);
            checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, file);
            curves.Add(Curve(experiment, config.Name, file, goals));
            curves.Add(random);
        }
        foreach (var other in baselines)
        {
            var otherFile = RunDirectory.ResolveCheckpoint(other);
            using var c = Checkpoint.Load(otherFile);
            if (!c.Config.Data.Dataset.IsEnvironment())
                throw new ConfigException($"--baseline {other}: not a meta-RL run (data.dataset {c.Config.Data.Dataset.Yaml()})");
            if (c.Config.Seed != config.Seed || c.Config.Data.Navigation != config.Data.Navigation)
                throw new ConfigException($"--baseline {other}: its held-out goals differ from {checkpointPath}'s (seed {c.Config.Seed} vs {config.Seed}, data.navigation {c.Config.Data.Navigation.Yaml()} vs {config.Data.Navigation.Yaml()}); compare runs of one seed and variant");
            using var experiment = Experiment.Create(c.Config, dataRoot);
            c.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, otherFile);
            curves.Insert(curves.Count - 1, Curve(experiment, c.Config.Name, otherFile, goals));
        }
        // The table and figures go to the run folder, or beside the JSON file --out names.
        var json = Path.GetFullPath(outJson ?? Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(file)))!, ResultFile));
        var dir = Path.GetDirectoryName(json)!;
        Directory.CreateDirectory(dir);
        var result = new PolicyEvaluationResult(curves, goals, TrajectoriesPerStep, FirstLr, LaterLr, checkpoint.Iteration, clock.Elapsed.TotalSeconds,
            json, [Path.Combine(dir, "returns.png"), Path.Combine(dir, "trajectories.png")]);
        File.WriteAllText(result.Json, ToJson(result).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Reports.PolicyPlots.WriteReturns(curves, result.Figures[0]);
        Reports.PolicyPlots.WriteTrajectories(curves.Where(c => c.Label != "random init").Take(2).ToList(), result.Figures[1]);
        return result;
    }

    /// <summary>One policy's returns on goals 0..goals−1 of the test split, adapted on the workers, in goal order.</summary>
    public static ReturnCurve Curve(Experiment e, string label, string? checkpoint, int goals)
    {
        var learner = e.Learner as IAdaptsPolicy ?? throw new ConfigException($"algorithm.name: {e.Config.Algorithm.Name} does not adapt a policy");
        var env = (IEnvironmentFamily)e.Family;
        var per = EpisodeScoring.ForEachEpisode(e.Family, Split.Test, 0, goals, e.TestShape, e.Config.Algorithm.MetaBatchSize, e.Device, e.Workers, (task, index) =>
        {
            var rollouts = learner.AdaptationRollouts(task, Steps, TrajectoriesPerStep, FirstLr, LaterLr);
            var paths = index < FigureCandidates ? rollouts.Select(r => Path0(r)).ToArray() : null;
            return (Returns: rollouts.Select(r => r.AverageReturn()).ToArray(), Goal: env.Goal(task), Paths: paths);
        });
        var steps = Enumerable.Range(0, Steps + 1).Select(s => Summary.Of(per.Select(p => p.Returns[s]).ToArray())).ToArray();
        var candidates = per.Where(p => p.Paths != null).ToList();
        var shown = SpreadGoals(candidates.Select(p => p.Goal).ToList(), FigureGoals);
        return new ReturnCurve(label, checkpoint, steps, [.. shown.Select(i => (candidates[i].Goal, candidates[i].Paths!))]);
    }

    /// <summary>
    /// Which goals the trajectory figure shows: the first, then each time the one farthest from
    /// those already chosen. The first few goals of a split can lie close together (the test
    /// split's first three are within 0.1 of each other), and three paths to one place show little.
    /// </summary>
    public static IReadOnlyList<int> SpreadGoals(IReadOnlyList<double[]> goals, int count)
    {
        var chosen = new List<int>();
        if (goals.Count == 0) return chosen;
        chosen.Add(0);
        while (chosen.Count < Math.Min(count, goals.Count))
        {
            double Nearest(int i) => chosen.Min(c => Math.Pow(goals[i][0] - goals[c][0], 2) + Math.Pow(goals[i][1] - goals[c][1], 2));
            chosen.Add(Enumerable.Range(0, goals.Count).Where(i => !chosen.Contains(i)).MaxBy(Nearest));
        }
        return chosen;
    }

    /// <summary>The positions of a rollout's first trajectory: each observed one, then where its last move took it.</summary>
    private static double[][] Path0(Trajectories d)
    {
        var o = d.ObservationSize;
        var points = new List<double[]>();
        for (var t = 0; t < d.Lengths[0]; t++) points.Add([d.Observations[t * o], d.Observations[t * o + 1]]);
        var last = d.Lengths[0] - 1;
        points.Add([points[^1][0] + Math.Clamp(d.Actions[last * 2], -0.1, 0.1), points[^1][1] + Math.Clamp(d.Actions[last * 2 + 1], -0.1, 0.1)]);
        return [.. points];
    }

    public static JsonObject ToJson(PolicyEvaluationResult r) => new()
    {
        ["goals"] = r.Goals,
        ["trajectories_per_step"] = r.Trajectories,
        ["step_sizes"] = new JsonArray(r.FirstLr, r.LaterLr),
        ["iteration"] = r.Iteration,
        ["seconds"] = Math.Round(r.Seconds, 1),
        ["policies"] = new JsonArray([.. r.Curves.Select(c => (JsonNode)new JsonObject
        {
            ["label"] = c.Label,
            ["checkpoint"] = c.Checkpoint,
            ["mean_return"] = new JsonArray([.. c.Steps.Select(s => (JsonNode)JsonValue.Create(s.Mean))]),
            ["ci95"] = new JsonArray([.. c.Steps.Select(s => (JsonNode)JsonValue.Create(s.Ci95))]),
        })]),
    };
}
