using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
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
        ["data.test.ways", "data.test.shots", "data.test.queries", "data.test.within_alphabet", "data.root", "algorithm.inner_lr", "algorithm.test_inner_steps", "device", "threads", "execution"];

    /// <summary>Refuses a --set of anything evaluation may not change (<see cref="ChangeableKeys"/>).</summary>
    public static void CheckChanges(IReadOnlyList<string> sets)
    {
        foreach (var s in sets)
        {
            var key = s.Split('=', 2)[0].Trim();
            if (!ChangeableKeys.Contains(key))
                throw new ConfigException($"--set {s}: eval may only change {string.Join(", ", ChangeableKeys)}");
        }
    }

    /// <summary>
    /// The checkpoint an eval command names (a file or a run folder), its config overridden by
    /// <paramref name="sets"/> once they are checked to be keys evaluation may change.
    /// </summary>
    public static Checkpoint Open(string checkpointPath, IReadOnlyList<string> sets)
    {
        CheckChanges(sets);
        var checkpoint = Checkpoint.Load(checkpointPath);
        try
        {
            ConfigLoader.Override(checkpoint.Config, sets);
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Evaluates episodes 0..episodes−1 of <paramref name="split"/>. Sets the process-wide
    /// threads and seed for the checkpoint's config (as a command does before it runs). Launched
    /// as several ranks (torchrun or Slurm variables, or --nproc), each scores its share of the
    /// episodes and every rank returns the same result from all of them.
    /// </summary>
    /// <param name="attack">Also score every episode's query set perturbed by this attack against the adapted model.</param>
    /// <param name="progress">Told (episodes scored, of how many) as scoring goes, on rank 0 only.</param>
    public static EvaluationResult Run(string checkpointPath, Split split, int episodes, IReadOnlyList<string> sets, string? dataRoot, Action<string>? log = null, Attack? attack = null,
        IProgress<(int Done, int Total)>? progress = null, bool ood = false)
    {
        if (episodes < 1) throw new ConfigException("--episodes must be at least 1");
        using var checkpoint = Open(checkpointPath, sets);
        var (file, config) = (checkpoint.FilePath, checkpoint.Config);

        var clock = Stopwatch.StartNew();
        using var experiment = Experiment.Launch(config, dataRoot, $"eval {Path.GetFullPath(file)} {split} {episodes}", new DataOptions { Log = log, Splits = TaskFamilies.Needs(config, split) });
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, file);
        var metric = experiment.Objective.Headline;
        if (experiment.Parallel is { Rank: > 0 }) progress = null;
        List<TaskScore> scores;
        Summary? attacked = null;
        PredictiveSummary? uncertainty = null;
        CalibrationSummary? calibration = null;
        OodSummary? oodSummary = null;
        IntervalSummary? intervals = null;
        if (ood && experiment.Family.IsRegression)
            throw new ConfigException($"--ood: the checkpoint was trained on {config.Data.Dataset.Yaml()} regression; the out-of-distribution check scores classes outside an episode");
        try
        {
            if (attack == null && !experiment.Family.IsRegression)
            {
                var calibrated = EpisodeScoring.CalibratedScores(experiment, split, episodes, progress);
                scores = [.. calibrated.Select(c => c.Score)];
                calibration = CalibrationSummary.Of([.. calibrated.Select(c => c.Calibration)]);
                if (ood) oodSummary = OodSummary.Of(EpisodeScoring.OodScores(experiment, split, episodes, progress));
            }
            else if (attack == null && experiment.Learner is IPredictiveGaussian gaussian)
            {
                var scored = EpisodeScoring.IntervalScores(experiment, gaussian, split, episodes, progress);
                scores = [.. scored.Select(s => s.Score)];
                intervals = new IntervalSummary(Summary.Of(scored.Select(s => s.Nll).ToArray()), Summary.Of(scored.Select(s => s.Coverage).ToArray()));
            }
            else if (attack == null)
            {
                scores = EpisodeScoring.Scores(experiment, split, episodes, progress);
            }
            else
            {
                var pairs = EpisodeScoring.ScoresUnderAttack(experiment, split, episodes, attack, progress);
                scores = [.. pairs.Select(p => p.Clean)];
                attacked = Summary.Of(pairs.Select(p => metric.Of(p.Attacked)).ToArray());
            }
            if (attack == null && experiment.Learner is IPredictiveLearner predictive && experiment.Family.IsRegression)
            {
                var p = EpisodeScoring.PredictiveScores(experiment, predictive, split, episodes);
                uncertainty = new PredictiveSummary(Summary.Of(p.Select(s => s.Loss).ToArray()), Summary.Of(p.Select(s => s.Accuracy).ToArray()));
            }
            experiment.Parallel?.Barrier("the end of evaluation");
        }
        catch (Exception e)
        {
            experiment.ReportFailure(e);
            throw;
        }
        return new EvaluationResult(metric, Summary.Of(scores.Select(metric.Of).ToArray()), split == Split.Val ? "val" : "test", experiment.TestShape,
            experiment.Family.IsRegression, AlgorithmRegistry.Get(config.Algorithm.Name).TestInnerSteps(config.Algorithm), config.Algorithm.InnerLr, checkpoint.Iteration, Path.GetFullPath(file), clock.Elapsed.TotalSeconds,
            attack, attacked, config.Seed) { Reporter = experiment.Parallel is not { Rank: > 0 }, Episodes = config.Data.Dataset.EpisodeText(experiment.TestShape.Ways, experiment.TestShape.Shots, config.Algorithm.Trajectories), Predictive = uncertainty, Calibration = calibration, Ood = oodSummary, Intervals = intervals };
    }

    /// <summary>
    /// Writes the result as JSON to <paramref name="outPath"/>, or to eval.json beside the checkpoint
    /// (the latest evaluation, for scripts); returns where. The evaluation store keeps it too
    /// (<see cref="EvaluationStore"/>), beside every other distinct evaluation of the run.
    /// </summary>
    public static string Write(EvaluationResult result, string? outPath, Action<string>? warn = null)
    {
        EvaluationStore.TrySaveAll(result, warn);
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
