using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Data;
using MetaRun.Training;

namespace MetaRun.Evaluation;

/// <summary>
/// Adapting to and scoring a fixed list of episodes (episodes 0..count−1 of a split, with the
/// test episode shape): validation during training, `eval`, and `eval --attack` all score here.
/// In a data-parallel run each rank scores its share and every rank gets all scores, in episode order.
/// </summary>
public static class EpisodeScoring
{
    /// <summary>The query loss and accuracy of each episode after the learner adapted to its support set.</summary>
    /// <param name="progress">Told (this rank's episodes scored, this rank's share) after each batch of episodes.</param>
    public static List<TaskScore> Scores(Experiment e, Split split, int count, IProgress<(int Done, int Total)>? progress = null) =>
        [.. ScoreEpisodes(e, split, count, 1, (task, _) => [e.Learner.Evaluate(task)], progress).Select(s => s[0])];

    /// <summary>
    /// Each episode scored twice by the same adapted model: on its clean query set, and on the
    /// query set perturbed by <paramref name="attack"/> against that model. PGD's random start
    /// is seeded by the episode's index, so the figures repeat at any worker or rank count.
    /// </summary>
    public static List<(TaskScore Clean, TaskScore Attacked)> ScoresUnderAttack(Experiment e, Split split, int count, Attack attack, IProgress<(int Done, int Total)>? progress = null)
    {
        var pixels = PixelSpace.Of(e.Family, "--attack");
        TaskScore[] Score(Episode task, long index)
        {
            var predict = e.Learner.Predictor(task);
            using var start = new Generator((ulong)e.Config.Seed ^ (0x61747461636BUL + (ulong)index));
            var attacked = pixels.Perturb(predict, task.QueryX, task.QueryY, e.Objective, attack, start);
            using var noGrad = Torch.NoGrad();
            return [e.Objective.Score(predict(task.QueryX), task.QueryY), e.Objective.Score(predict(attacked), task.QueryY)];
        }
        return [.. ScoreEpisodes(e, split, count, 2, Score, progress).Select(s => (s[0], s[1]))];
    }

    /// <summary>
    /// For a learner with a predictive distribution (<see cref="IPredictiveLearner"/>): each
    /// episode's mean Gaussian negative log-likelihood of the query targets (as Loss) and the share
    /// of them inside the central 90% interval μ ± 1.645σ (as Accuracy).
    /// </summary>
    public static List<TaskScore> PredictiveScores(Experiment e, IPredictiveLearner learner, Split split, int count) =>
        [.. ScoreEpisodes(e, split, count, 1, (task, _) =>
        {
            using var noGrad = Torch.NoGrad();
            var (mean, std) = learner.PredictiveDistribution(task);
            var nll = Cnp.GaussianNll(mean, std, task.QueryY).Item();
            var inside = (task.QueryY - mean).Abs().Le(std * Z90).To(ScalarType.Float64).Mean().Item();
            return [new TaskScore(nll, inside)];
        }, null).Select(s => s[0])];

    /// <summary>The standard normal's 95th percentile: μ ± Z90·σ holds 90% of a Gaussian.</summary>
    public const double Z90 = 1.6448536269514722;

    /// <summary>score(episode, its index in the split) for episodes start..start+count−1, in order, on up to <paramref name="workers"/> threads.</summary>
    public static List<T> ForEachEpisode<T>(ITaskFamily family, Split split, long start, int count, EpisodeShape shape, int batchSize, Device device, int workers, Func<Episode, long, T> score,
        IProgress<(int Done, int Total)>? progress = null)
    {
        var scores = new List<T>(count);
        for (long first = 0; first < count; first += batchSize)
        {
            using var scope = Torch.NewScope();
            using var batch = family.Sample(split, start + first, (int)Math.Min(batchSize, count - first), shape);
            var tasks = TaskWorkers.Episodes(batch, device);
            var results = new T[tasks.Length];
            TaskWorkers.ForEach(tasks.Length, workers, i => results[i] = score(tasks[i], start + first + i));
            scores.AddRange(results);
            progress?.Report((scores.Count, count));
        }
        return scores;
    }

    /// <summary>
    /// <paramref name="width"/> scores per episode for episodes 0..count−1: this rank's share on
    /// the workers, then gathered so that every rank holds all of them, in episode order.
    /// </summary>
    private static List<TaskScore[]> ScoreEpisodes(Experiment e, Split split, int count, int width, Func<Episode, long, TaskScore[]> score, IProgress<(int Done, int Total)>? progress)
    {
        var parallel = e.Parallel;
        var (first, mine) = parallel?.Share(0, count) ?? (0L, count);
        var scores = ForEachEpisode(e.Family, split, first, mine, e.TestShape, e.Config.Algorithm.MetaBatchSize, e.Device, e.Workers, score, progress);
        if (parallel == null) return scores;
        var all = parallel.Gather(scores.SelectMany(s => s.SelectMany(t => new[] { t.Loss, t.Accuracy })).ToArray(), $"gathering the {split} scores");
        var per = 2 * width;
        return [.. Enumerable.Range(0, all.Length / per).Select(i => Enumerable.Range(0, width).Select(j => new TaskScore(all[per * i + 2 * j], all[per * i + 2 * j + 1])).ToArray())];
    }
}
