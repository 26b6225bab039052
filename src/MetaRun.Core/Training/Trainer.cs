using System.Diagnostics;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
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
/// It knows nothing of any particular algorithm.
/// </summary>
public sealed class Trainer(Experiment experiment, string runDir, ILogger log, ITrainingObserver? observer = null)
{
    public string CheckpointDir => Path.Combine(runDir, "checkpoints");
    public string LastPath => Path.Combine(CheckpointDir, "last.safetensors");
    public string BestPath => Path.Combine(CheckpointDir, "best.safetensors");

    public static Optimizer CreateOptimizer(AlgorithmConfig a, IReadOnlyList<Tensor> parameters) => a.OuterOptimizer switch
    {
        "sgd" => new Sgd(parameters, a.OuterLr),
        _ => new Adam(parameters, a.OuterLr),
    };

    /// <summary>
    /// The outer learning rate at a 1-based iteration: a pure function of the iteration (never
    /// carried in optimizer state), so a resumed run follows the same schedule bit for bit.
    /// linear: Reptile's annealing to 0; cosine: MAML++'s (and SGDR's) half cosine to 0.
    /// </summary>
    public static double ScheduledLr(AlgorithmConfig a, long iteration)
    {
        var progress = (double)(iteration - 1) / a.Iterations;
        return a.OuterLrSchedule switch
        {
            "linear" => a.OuterLr * (1 - progress),
            "cosine" => a.OuterLr * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            _ => a.OuterLr,
        };
    }

    /// <summary>Trains to the configured iteration count, continuing from <paramref name="resume"/> if given.</summary>
    public void Run(Checkpoint? resume = null)
    {
        var config = experiment.Config;
        var learner = experiment.Learner;
        var hash = ConfigLoader.Hash(config);
        var total = config.Algorithm.Iterations;
        var batchSize = config.Algorithm.MetaBatchSize;
        using var optimizer = CreateOptimizer(config.Algorithm, learner.OuterParameters);

        long start = 0;
        double? bestScore = null;
        if (resume != null)
        {
            if (resume.ConfigHash != hash)
                throw new CheckpointException($"{LastPath}: the checkpoint was trained with a different config (hash {resume.ConfigHash}, now {hash}); only name, output, algorithm.iterations, eval and checkpoint may change on resume");
            resume.LoadInto(learner.OuterParameterNames, learner.OuterParameters, LastPath);
            resume.LoadOptimizerInto(optimizer, LastPath);
            start = resume.Iteration;
            bestScore = BestScoreSoFar();
            log.Information("Resumed from {Path} at iteration {Iteration}", LastPath, start);
        }

        Directory.CreateDirectory(CheckpointDir);
        using var metrics = new MetricsLog(runDir, start);
        var clock = Stopwatch.StartNew();
        observer?.Started(start, total);
        log.Information("Training {Name}: {Algorithm} on {Dataset}, iterations {Start}..{Total}, meta-batch {Batch}, device {Device}, {Workers} workers × {Threads} threads",
            config.Name, config.Algorithm.Name, config.Data.Dataset, start + 1, total, batchSize, experiment.Device, experiment.Workers, Torch.Threads);

        using var prefetcher = new Prefetcher(experiment.TrainingBatch, start);
        for (var it = start + 1; it <= total; it++)
        {
            MetricsRow row;
            using (var scope = Torch.NewScope())
            {
                using var batch = prefetcher.Next();
                optimizer.LearningRate = ScheduledLr(config.Algorithm, it);
                (learner as IIterationAware)?.SetIteration(it);
                var step = experiment.Step(batch);
                optimizer.Step(step.Gradients);
                row = new MetricsRow(it, step.Loss, step.Accuracy, clock.Elapsed.TotalSeconds);
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
                row = row with { ValLoss = val.Loss.Mean, ValAccuracy = val.Accuracy.Mean, ValCi95 = val.Accuracy.Ci95 };
                var score = experiment.Family.IsRegression ? -val.Loss.Mean : val.Accuracy.Mean;
                isBest = bestScore == null || score > bestScore;
                if (isBest)
                {
                    bestScore = score;
                    Save(BestPath, it, optimizer, val);
                }
                if (experiment.Family.IsRegression)
                    log.Information("Iteration {Iteration}: validation MSE {Loss:F4} ± {Ci:F4}{Best}", it, val.Loss.Mean, val.Loss.Ci95, isBest ? " (best)" : "");
                else
                    log.Information("Iteration {Iteration}: validation loss {Loss:F4}, accuracy {Accuracy:F4} ± {Ci:F4}{Best}", it, val.Loss.Mean, val.Accuracy.Mean, val.Accuracy.Ci95, isBest ? " (best)" : "");
            }
            metrics.Write(row);
            if (isBest || row.ValLoss != null) observer?.Validated(row, isBest);
            observer?.Iteration(row);
            if (it % config.Checkpoint.Interval == 0 || it == total)
            {
                metrics.Flush();
                Save(LastPath, it, optimizer, null);
                log.Debug("Checkpoint at iteration {Iteration}", it);
            }
        }
        metrics.Flush();
        log.Information("Finished {Total} iterations in {Seconds:F1} s", total, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Validation on a fixed set of episodes (0..eval.episodes−1 of the validation split), so scores compare across time.</summary>
    public (Summary Loss, Summary Accuracy) Validate()
    {
        var scores = experiment.Evaluate(Split.Val, experiment.Config.Eval.Episodes);
        return (Summary.Of(scores.Select(s => s.Loss).ToArray()), Summary.Of(scores.Select(s => s.Accuracy).ToArray()));
    }

    private void Save(string path, long iteration, Optimizer optimizer, (Summary Loss, Summary Accuracy)? val)
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
        if (!File.Exists(BestPath)) return null;
        using var best = Checkpoint.Load(BestPath);
        return experiment.Family.IsRegression ? -best.ValidationLoss : best.ValidationAccuracy;
    }
}
