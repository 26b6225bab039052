using System.Diagnostics;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Evaluation;
using Serilog;

namespace MetaRun.Training;

/// <summary>Receives the trainer's progress (the CLI draws it; tests ignore it).</summary>
public interface ITrainingObserver
{
    void Started(long startIteration, long totalIterations);
    void Iteration(MetricsRow row);
    void Validated(MetricsRow row, bool best);
}

/// <summary>
/// The outer loop, common to every algorithm: sample a meta-batch, ask the learner for its
/// gradients, step the outer optimizer; validate, log metrics and checkpoint on schedule.
/// It knows nothing of any particular algorithm. In a data-parallel run every rank runs this
/// loop in step (same outer steps, same validation verdicts) and rank 0 alone writes the run folder.
/// </summary>
public sealed class Trainer(Experiment experiment, RunDirectory run, ILogger log, ITrainingObserver? observer = null)
{
    /// <summary>
    /// A graceful stop (the first SIGINT or SIGTERM): the current outer step finishes,
    /// checkpoints/last is written, and Run returns with <see cref="StoppedAt"/> set.
    /// </summary>
    public CancellationToken Stop { get; init; }

    /// <summary>The iteration a graceful stop saved, or null when training ran to the end.</summary>
    public long? StoppedAt { get; private set; }

    /// <summary>Trains to the configured iteration count, continuing from <paramref name="resume"/> if given.</summary>
    public void Run(Checkpoint? resume = null)
    {
        var config = experiment.Config;
        var learner = experiment.Learner;
        var headline = experiment.Objective.Headline;
        var total = config.Algorithm.Iterations;
        var parallel = experiment.Parallel;
        var writes = parallel == null || parallel.Rank == 0;
        using var optimizer = MetaIteration.CreateOptimizer(config.Algorithm, learner.OuterParameters);

        long start = 0;
        double? bestScore = null;
        if (resume != null)
        {
            resume.CheckSameTraining(config, run.LastCheckpoint);
            resume.LoadInto(learner.OuterParameterNames, learner.OuterParameters, run.LastCheckpoint);
            resume.LoadOptimizerInto(optimizer, run.LastCheckpoint);
            start = resume.Iteration;
            bestScore = BestScoreSoFar();
            log.Information("Resumed from {Path} at iteration {Iteration}", run.LastCheckpoint, start);
        }

        if (writes) Directory.CreateDirectory(run.CheckpointDir);
        var traced = experiment.Learner as ITracesHyperparameters;
        using var metrics = writes ? new MetricsLog(run, start, traced?.TracedNames) : null;
        using var tensorboard = writes ? TensorBoardLog.Open(run, config, start, traced?.TracedNames) : null;
        var curves = writes ? new Reports.Plots.CurvesWriter(run, log) : null;
        var clock = Stopwatch.StartNew();
        observer?.Started(start, total);
        var plan = experiment.Plan;
        var execution = !plan.Batched ? "tasks one by one" : plan.TasksPerRun > 0 ? $"batched in runs of up to {plan.TasksPerRun} tasks" : "batched";
        log.Information("Training {Name}: {Algorithm} on {Dataset}, iterations {Start}..{Total}, meta-batch {Batch}, device {Device}, {Workers} workers × {Threads} threads, {Execution:l}",
            config.Name, config.Algorithm.Name, config.Data.Dataset.Yaml(), start + 1, total, config.Algorithm.MetaBatchSize, experiment.Device, experiment.Workers, Torch.Threads, execution);
        if (parallel != null)
            log.Information("Rank {Rank} of {World} ({Backend:l}, rendezvous {Addr:l}:{Port}, collective timeout {Timeout} s)",
                parallel.Rank, parallel.WorldSize, parallel.Backend.ToString(), parallel.Launch.MasterAddr, parallel.Launch.MasterPort, parallel.Timeout.TotalSeconds);

        using var prefetcher = new Prefetcher(experiment.TrainingBatch, start);
        double stepSeconds;
        for (var it = start + 1; it <= total; it++)
        {
            MetricsRow row;
            bool stopAsked;
            var stepStart = clock.Elapsed.TotalSeconds;
            using (var scope = Torch.NewScope())
            {
                using var batch = prefetcher.Next();
                var step = MetaIteration.Run(learner, config.Algorithm, optimizer, batch, it, experiment.Plan, parallel, Stop);
                row = new MetricsRow(it, step.Loss, step.Accuracy, clock.Elapsed.TotalSeconds, Traced: traced?.Traced());
                stepSeconds = row.Seconds - stepStart;
                stopAsked = step.Stop;
            }
            if (!double.IsFinite(row.TrainLoss))
                throw new MetaRunException(ExitCodes.Failure, $"training diverged at iteration {it} (loss {row.TrainLoss}); lower algorithm.inner_lr or algorithm.outer_lr");

            var isBest = false;
            if (config.Eval.Interval > 0 && (it % config.Eval.Interval == 0 || it == total))
            {
                var val = Validate();
                // A non-finite validation loss is divergence too: it must not become "best" or be checkpointed.
                if (!double.IsFinite(val.Loss.Mean))
                    throw new MetaRunException(ExitCodes.Failure, $"training diverged at iteration {it} (validation loss {val.Loss.Mean}); lower algorithm.inner_lr or algorithm.outer_lr");
                var score = headline.Goodness(val.Headline.Mean);
                // The interval of the headline metric: accuracy's, or for regression the MSE's.
                row = row with { ValLoss = val.Loss.Mean, ValAccuracy = val.Accuracy.Mean, ValCi95 = val.Headline.Ci95 };
                isBest = bestScore == null || score > bestScore;
                if (isBest)
                {
                    bestScore = score;
                    if (writes) Save(run.BestCheckpoint, it, optimizer, val);
                }
                log.Information("Iteration {Iteration}: validation loss {Loss:F4}, {Metric} {Mean:F4} ± {Ci:F4}{Best}", it, val.Loss.Mean, headline.Name, val.Headline.Mean, val.Headline.Ci95, isBest ? " (best)" : "");
            }
            metrics?.Write(row);
            tensorboard?.Write(row, stepSeconds);
            curves?.Add(row);
            if (isBest || row.ValLoss != null) observer?.Validated(row, isBest);
            observer?.Iteration(row);
            var stopping = stopAsked && it < total;
            if (writes && (it % config.Checkpoint.Interval == 0 || it == total || stopping))
            {
                metrics!.Flush();
                Save(run.LastCheckpoint, it, optimizer, null);
                curves!.Write();
                log.Debug("Checkpoint at iteration {Iteration}", it);
            }
            if (stopping)
            {
                StoppedAt = it;
                log.Information("Stopped on request at iteration {Iteration}; checkpoints/last holds it", it);
                return;
            }
        }
        metrics?.Flush();
        // Rank 0 serves the rendezvous store: it leaves only once every rank is done with it.
        parallel?.Barrier("the end of training");
        log.Information("Finished {Total} iterations in {Seconds:F1} s", total, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Validation scores summarized: loss, accuracy, and the objective's headline metric (one of the two).</summary>
    public readonly record struct Validation(Summary Loss, Summary Accuracy, Summary Headline);

    /// <summary>Validation on a fixed set of episodes (0..eval.episodes−1 of the validation split), so scores compare across time.</summary>
    public Validation Validate()
    {
        var scores = EpisodeScoring.Scores(experiment, Split.Val, experiment.Config.Eval.Episodes);
        var headline = experiment.Objective.Headline;
        return new Validation(Summary.Of(scores.Select(s => s.Loss).ToArray()), Summary.Of(scores.Select(s => s.Accuracy).ToArray()),
            Summary.Of(scores.Select(headline.Of).ToArray()));
    }

    private void Save(string path, long iteration, Optimizer optimizer, Validation? val)
    {
        // The scope frees the optimizer-state copies; the parameters are the live ones, not disposed.
        using var scope = Torch.NewScope();
        var learner = experiment.Learner;
        var parameters = learner.OuterParameterNames.Select((n, i) => (n, learner.OuterParameters[i])).ToDictionary(p => p.n, p => p.Item2);
        var checkpoint = new Checkpoint
        {
            Config = experiment.Config,
            ConfigHash = ConfigLoader.Hash(experiment.Config),
            Iteration = iteration,
            ValidationAccuracy = experiment.Family.IsRegression ? null : val?.Accuracy.Mean,
            ValidationLoss = val?.Loss.Mean,
            Parameters = parameters,
            OptimizerState = optimizer.StateDict(),
        };
        checkpoint.Save(path, experiment.Config.Algorithm.MetaBatchSize);
    }

    private double? BestScoreSoFar()
    {
        if (!File.Exists(run.BestCheckpoint)) return null;
        using var best = Checkpoint.Load(run.BestCheckpoint);
        var value = experiment.Objective.Headline.Of(new TaskScore(best.ValidationLoss ?? double.NaN, best.ValidationAccuracy ?? double.NaN));
        return double.IsNaN(value) ? null : experiment.Objective.Headline.Goodness(value);
    }
}
