using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Distributed;
using MetaRun.Training;

namespace MetaRun.Evaluation;

/// <summary>
/// Meta-testing a checkpoint: its own config, with only the keys evaluation may change
/// overridden, adapted to and scored on a fixed list of episodes of a split.
/// </summary>
public static class Evaluator
{
    /// <summary>The file written beside the checkpoint unless another is named.</summary>
    public const string ResultFile = "eval.json";

    /// <summary>
    /// What evaluation may change: the test episodes' shape and the adaptation, and where the data
    /// and the work are — never anything that was trained.
    /// </summary>
    public static readonly IReadOnlyList<string> ChangeableKeys =
        ["data.test.ways", "data.test.shots", "data.test.queries", "data.test.within_alphabet", "data.root", "algorithm.inner_lr", "algorithm.test_inner_steps", "device", "threads"];

    /// <summary>
    /// Evaluates episodes 0..episodes−1 of <paramref name="split"/>. Sets the process-wide
    /// threads and seed for the checkpoint's config (as a command does before it runs). Launched
    /// as several ranks (torchrun or Slurm variables, or --nproc), each scores its share of the
    /// episodes and every rank returns the same result from all of them.
    /// </summary>
    /// <param name="attack">Also score every episode's query set perturbed by this attack against the adapted model.</param>
    public static EvaluationResult Run(string checkpointPath, Split split, int episodes, IReadOnlyList<string> sets, string? dataRoot, Action<string>? log = null, Attack? attack = null)
    {
        if (episodes < 1) throw new ConfigException("--episodes must be at least 1");
        foreach (var s in sets)
        {
            var key = s.Split('=', 2)[0].Trim();
            if (!ChangeableKeys.Contains(key))
                throw new ConfigException($"--set {s}: eval may only change {string.Join(", ", ChangeableKeys)}");
        }
        var file = RunDirectory.ResolveCheckpoint(checkpointPath);
        using var checkpoint = Checkpoint.Load(file);
        var config = checkpoint.Config;
        ConfigLoader.Override(config, sets);

        var clock = Stopwatch.StartNew();
        var launch = Launch.FromEnvironment();
        Experiment.ApplyProcessSettings(config, launch);
        using var parallel = DataParallel.JoinIfLaunched(launch, config, $"eval {Path.GetFullPath(file)} {split} {episodes}");
        using var experiment = Experiment.Create(config, dataRoot, parallel, new DataOptions { Log = log });
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, file);
        var metric = experiment.Objective.Headline;
        List<TaskScore> scores;
        Summary? attacked = null;
        try
        {
            if (attack == null)
            {
                scores = experiment.Evaluate(split, episodes);
            }
            else
            {
                var pairs = experiment.EvaluateUnderAttack(split, episodes, attack);
                scores = [.. pairs.Select(p => p.Clean)];
                attacked = Summary.Of(pairs.Select(p => metric.Of(p.Attacked)).ToArray());
            }
            parallel?.Barrier("the end of evaluation");
        }
        catch (Exception e)
        {
            parallel?.ReportFailure(e);
            throw;
        }
        return new EvaluationResult(metric, Summary.Of(scores.Select(metric.Of).ToArray()), split == Split.Val ? "val" : "test", experiment.TestShape,
            experiment.Family.IsRegression, AlgorithmRegistry.Get(config.Algorithm.Name).TestInnerSteps(config.Algorithm), config.Algorithm.InnerLr, checkpoint.Iteration, Path.GetFullPath(file), clock.Elapsed.TotalSeconds,
            attack, attacked);
    }

    /// <summary>Writes the result as JSON to <paramref name="outPath"/>, or to eval.json beside the checkpoint; returns where.</summary>
    public static string Write(EvaluationResult result, string? outPath)
    {
        var dest = outPath ?? Path.Combine(Path.GetDirectoryName(result.Checkpoint)!, ResultFile);
        try
        {
            File.WriteAllText(dest, result.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MetaRunException(ExitCodes.IoProblem, $"{dest}: cannot write the result ({e.Message}); it is printed above; write it elsewhere with --out FILE");
        }
        return dest;
    }
}
