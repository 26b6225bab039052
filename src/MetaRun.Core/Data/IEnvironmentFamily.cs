using LibTorch;
using MetaRun.Algorithms;

namespace MetaRun.Data;

/// <summary>
/// Trajectories of one task, padded to the horizon: observations [N, T, O], the sampled (unclipped)
/// actions [N, T, A] and rewards [N, T] row-major, and each trajectory's length (steps taken,
/// the terminal one included); entries past a trajectory's length are zero.
/// </summary>
public sealed record Trajectories(int Count, int Horizon, int ObservationSize, int ActionSize, float[] Observations, float[] Actions, float[] Rewards, int[] Lengths)
{
    /// <summary>The average undiscounted return: the paper's "average return".</summary>
    public double AverageReturn()
    {
        double sum = 0;
        for (var n = 0; n < Count; n++)
            for (var t = 0; t < Lengths[n]; t++) sum += Rewards[n * Horizon + t];
        return sum / Count;
    }
}

/// <summary>
/// A task family whose tasks are environments: an episode of <see cref="ITaskFamily.Sample"/>
/// names a task (its parameters in SupportX, its split and index in SupportY, the same in the
/// query half), and the learner collects its own data by acting in it. Rollouts are a pure
/// function of (seed, split, task index, stream, trajectory), so a run repeats bit for bit at any
/// worker or process count and after a resume.
/// </summary>
public interface IEnvironmentFamily : ITaskFamily
{
    int ObservationSize { get; }
    int ActionSize { get; }
    int Horizon { get; }

    /// <summary>
    /// <paramref name="trajectories"/> rollouts of a Gaussian policy in <paramref name="task"/>'s
    /// environment, all advanced together: actions are mean(observations) + exp(logStd) · ε with
    /// ε drawn from the generator of (task, <paramref name="stream"/>, trajectory). Streams tell
    /// apart the rollouts one task needs (before adaptation, after each step).
    /// </summary>
    /// <param name="mean">The policy's mean action for a batch of observations [n, O] → [n, A] (called without a graph).</param>
    Trajectories Rollout(Episode task, int stream, int trajectories, Func<Tensor, Tensor> mean, double[] logStd);

    /// <summary>The task's goal (for figures).</summary>
    double[] Goal(Episode task);
}
