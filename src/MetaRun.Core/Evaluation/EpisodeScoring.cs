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
        [.. ScoreEpisodes(e, split, count, 1, Adapted(e, split, (output, queryY) => new[] { e.Objective.Score(output, queryY) }, task => [e.Learner.Evaluate(task)], progress)).Select(s => s[0])];

    /// <summary>
    /// A scorer of this rank's share of episodes (first, count): each episode's query outputs after
    /// adapting to its support set, made into a result by <paramref name="fromOutput"/>(outputs,
    /// query targets); with execution: batched a fast-weight learner adapts to a run of episodes at
    /// once (<see cref="FastWeightLearner.PredictEach"/>), otherwise each is <paramref name="alone"/>(episode).
    /// </summary>
    private static Func<long, int, List<T>> Adapted<T>(Experiment e, Split split, Func<Tensor, Tensor, T> fromOutput, Func<Episode, T> alone, IProgress<(int Done, int Total)>? progress) =>
        e.Plan.Batched && e.Learner is FastWeightLearner learner
            ? (first, n) => ForEachRun(e.Family, split, first, n, e.TestShape, e.Config.Algorithm.MetaBatchSize, e.Device, e.Workers, e.Plan.TasksPerRun, run =>
            {
                var output = learner.PredictEach(run);
                using var noGrad = Torch.NoGrad();
                return Enumerable.Range(0, (int)output.Size(0)).Select(t => fromOutput(output[t], run.QueryY[t])).ToArray();
            }, progress)
            : (first, n) => ForEachEpisode(e.Family, split, first, n, e.TestShape, e.Config.Algorithm.MetaBatchSize, e.Device, e.Workers, (task, _) => alone(task), progress);

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

    /// <summary>
    /// Each episode's query loss and accuracy and the calibration of its query predictions, from
    /// one adaptation (<see cref="IMetaLearner.AdaptTo"/>, the call <see cref="IMetaLearner.Evaluate"/>
    /// scores): the softmax of the query outputs is the predictive distribution — for a Bayesian
    /// learner the outputs are already its log predictive probabilities.
    /// </summary>
    public static List<(TaskScore Score, EpisodeCalibration Calibration)> CalibratedScores(Experiment e, Split split, int count, IProgress<(int Done, int Total)>? progress = null)
    {
        (TaskScore, EpisodeCalibration) Score(Tensor logits, Tensor queryY)
        {
            using var noGrad = Torch.NoGrad();
            var (logp, labels, classes) = LogProbabilities(logits, queryY);
            return (e.Objective.Score(logits, queryY), Calibration.OfLogProbabilities(logp, labels, classes));
        }
        const int width = 5 + 3 * Calibration.Bins;
        return Gathered(e, split, count, Adapted(e, split, Score, task => Score(e.Learner.AdaptTo(task).Logits, task.QueryY), progress), width,
            s => [s.Item1.Loss, s.Item1.Accuracy, s.Item2.Nll, s.Item2.Brier, s.Item2.Ece, .. s.Item2.Bins.Flatten()],
            v => (new TaskScore(v[0], v[1]), new EpisodeCalibration(v[2], v[3], v[4], ReliabilityBins.Unflatten(v[5..]))));
    }

    /// <summary>
    /// The out-of-distribution check (`eval --ood`): episode i is the split's 2N-way episode i (a
    /// pure function of seed, split and index like every episode); the learner adapts to the
    /// support set of its first N classes and predicts the queries of all 2N at once, so the
    /// queries of the last N are of classes it never saw in the support set. Per episode: the
    /// accuracy on the in-episode queries, and each query's predictive entropy and top probability.
    /// </summary>
    public static List<OodEpisode> OodScores(Experiment e, Split split, int count, IProgress<(int Done, int Total)>? progress = null)
    {
        var shape = e.TestShape;
        int n = shape.Ways, inSupport = shape.Ways * shape.Shots, inQuery = shape.Ways * shape.Queries;
        OodEpisode Score(Episode wide, long _)
        {
            var task = new Episode(wide.SupportX.Narrow(0, 0, inSupport), wide.SupportY.Narrow(0, 0, inSupport), wide.QueryX, wide.QueryY);
            var logits = e.Learner.AdaptTo(task).Logits;
            using var noGrad = Torch.NoGrad();
            var (logp, labels, classes) = LogProbabilities(logits, wide.QueryY);
            var entropy = new double[labels.Length];
            var top = new double[labels.Length];
            var correct = 0;
            var p = new double[classes];
            for (var i = 0; i < labels.Length; i++)
            {
                var best = 0;
                for (var c = 0; c < classes; c++)
                {
                    p[c] = Math.Exp(logp[i * classes + c]);
                    if (p[c] > p[best]) best = c;
                }
                (entropy[i], top[i]) = (Calibration.Entropy(p), p[best]);
                if (i < inQuery && best == labels[i]) correct++;
            }
            return new OodEpisode((double)correct / inQuery, entropy[..inQuery], top[..inQuery], entropy[inQuery..], top[inQuery..]);
        }
        var width = 1 + 4 * inQuery;
        return Gathered(e, split, count, shape with { Ways = 2 * n }, Score, width,
            o => [o.InAccuracy, .. o.InEntropy, .. o.InTop, .. o.OutEntropy, .. o.OutTop],
            v => new OodEpisode(v[0], v[1..(1 + inQuery)], v[(1 + inQuery)..(1 + 2 * inQuery)], v[(1 + 2 * inQuery)..(1 + 3 * inQuery)], v[(1 + 3 * inQuery)..]), progress);
    }

    /// <summary>Each regression episode's query loss and the Gaussian NLL and 90%-interval coverage of the learner's predictive distribution.</summary>
    public static List<(TaskScore Score, double Nll, double Coverage)> IntervalScores(Experiment e, IPredictiveGaussian learner, Split split, int count, IProgress<(int Done, int Total)>? progress = null)
    {
        (TaskScore, double, double) Score(Episode task, long _)
        {
            var (mean, variance) = learner.PredictiveGaussian(task);
            using var noGrad = Torch.NoGrad();
            double[] Doubles(Tensor t) => t.To(Device.Cpu).To(ScalarType.Float64).Reshape(-1).ToArray<double>();
            var (nll, coverage) = IntervalSummary.OfEpisode(Doubles(mean), Doubles(variance), Doubles(task.QueryY));
            return (e.Objective.Score(mean, task.QueryY), nll, coverage);
        }
        return Gathered(e, split, count, e.TestShape, Score, 4, s => [s.Item1.Loss, s.Item1.Accuracy, s.Item2, s.Item3], v => (new TaskScore(v[0], v[1]), v[2], v[3]), progress);
    }

    /// <summary>log-softmax of [queries, classes] outputs and the labels, as float64 arrays.</summary>
    private static (double[] LogP, long[] Labels, int Classes) LogProbabilities(Tensor logits, Tensor labels) =>
        (F.LogSoftmax(logits, 1).To(Device.Cpu).To(ScalarType.Float64).ToArray<double>(), labels.To(Device.Cpu).To(ScalarType.Int64).ToArray<long>(), (int)logits.Size(1));

    /// <summary>
    /// score(episode) for episodes 0..count−1: this rank's share on the workers, then gathered as
    /// <paramref name="width"/> numbers each so that every rank holds all of them, in episode order.
    /// </summary>
    private static List<T> Gathered<T>(Experiment e, Split split, int count, EpisodeShape shape, Func<Episode, long, T> score, int width, Func<T, double[]> encode, Func<double[], T> decode,
        IProgress<(int Done, int Total)>? progress) =>
        Gathered(e, split, count, (first, n) => ForEachEpisode(e.Family, split, first, n, shape, e.Config.Algorithm.MetaBatchSize, e.Device, e.Workers, score, progress), width, encode, decode);

    /// <summary>As above, this rank's share (first episode, count) scored by <paramref name="mine"/>.</summary>
    private static List<T> Gathered<T>(Experiment e, Split split, int count, Func<long, int, List<T>> mine, int width, Func<T, double[]> encode, Func<double[], T> decode)
    {
        var parallel = e.Parallel;
        var (first, share) = parallel?.Share(0, count) ?? (0L, count);
        var scores = mine(first, share);
        if (parallel == null) return scores;
        var all = parallel.Gather(scores.SelectMany(encode).ToArray(), $"gathering the {split} scores");
        return [.. Enumerable.Range(0, all.Length / width).Select(i => decode(all[(width * i)..(width * (i + 1))]))];
    }

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
    /// score(run) for episodes start..start+count−1, in order: each meta-batch of them cut into runs
    /// of at most <paramref name="tasksPerRun"/> consecutive episodes (<see cref="TaskWorkers.Runs"/>), a run scored at once.
    /// </summary>
    public static List<T> ForEachRun<T>(ITaskFamily family, Split split, long start, int count, EpisodeShape shape, int batchSize, Device device, int workers, int tasksPerRun, Func<Episode, T[]> score,
        IProgress<(int Done, int Total)>? progress = null)
    {
        var scores = new List<T>(count);
        for (long first = 0; first < count; first += batchSize)
        {
            using var scope = Torch.NewScope();
            using var batch = family.Sample(split, start + first, (int)Math.Min(batchSize, count - first), shape);
            var runs = TaskWorkers.Runs(batch, device, tasksPerRun);
            var results = new T[runs.Length][];
            TaskWorkers.ForEach(runs.Length, workers, i => results[i] = score(runs[i]));
            foreach (var r in results) scores.AddRange(r);
            progress?.Report((scores.Count, count));
        }
        return scores;
    }

    /// <summary>
    /// <paramref name="width"/> scores per episode for episodes 0..count−1: this rank's share on
    /// the workers, then gathered so that every rank holds all of them, in episode order.
    /// </summary>
    private static List<TaskScore[]> ScoreEpisodes(Experiment e, Split split, int count, int width, Func<Episode, long, TaskScore[]> score, IProgress<(int Done, int Total)>? progress) =>
        ScoreEpisodes(e, split, count, width, (first, mine) => ForEachEpisode(e.Family, split, first, mine, e.TestShape, e.Config.Algorithm.MetaBatchSize, e.Device, e.Workers, score, progress));

    /// <summary>As above, this rank's share (first episode, count) scored by <paramref name="mine"/>.</summary>
    private static List<TaskScore[]> ScoreEpisodes(Experiment e, Split split, int count, int width, Func<long, int, List<TaskScore[]>> mine) =>
        Gathered(e, split, count, mine, 2 * width, s => [.. s.SelectMany(t => new[] { t.Loss, t.Accuracy })],
            v => [.. Enumerable.Range(0, width).Select(j => new TaskScore(v[2 * j], v[2 * j + 1]))]);
}

/// <summary>One episode of the out-of-distribution check: accuracy on its in-episode queries; predictive entropy and top probability of each in-episode and each out-of-episode query.</summary>
public sealed record OodEpisode(double InAccuracy, double[] InEntropy, double[] InTop, double[] OutEntropy, double[] OutTop);
