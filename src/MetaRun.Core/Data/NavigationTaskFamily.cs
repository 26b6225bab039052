using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>
/// 2D navigation (Finn et al. 2017, section 5.3): a point agent starts at the origin; the state is
/// its position, the action a velocity clipped to [−0.1, 0.1] per axis, the next position
/// position + clipped action; the reward after each move is minus the squared distance to the
/// task's goal (paper) or minus the distance (official code); the episode ends when the agent
/// is within 0.01 of the goal or after H = 100 steps. A task is a goal, uniform in the unit
/// square [0, 1]² (paper) or in [−0.5, 0.5]² (official code). With observeGoal the observation
/// is (position, goal): the oracle baseline's policy, which is told the task.
/// </summary>
public sealed class NavigationTaskFamily(long seed, NavigationVariant variant = NavigationVariant.Paper, bool observeGoal = false) : IEnvironmentFamily
{
    public const int Steps = 100;
    public const double MaxSpeed = 0.1, GoalRadius = 0.01;

    public string Name => "navigation2d";
    public bool IsRegression => Dataset.Navigation2d.IsRegression();
    public int ObservationSize => observeGoal ? 4 : 2;
    public int ActionSize => 2;
    public int Horizon => Steps;
    public long[] InputShape => [ObservationSize];
    public int ClassCount(Split split) => 0;

    /// <summary>The goal of task <paramref name="index"/> of a split.</summary>
    public (double X, double Y) GoalOf(Split split, long index)
    {
        var rng = SplitMix64.ForEpisode(seed, split, index);
        var (lo, hi) = variant == NavigationVariant.Paper ? (0.0, 1.0) : (-0.5, 0.5);
        var x = lo + (hi - lo) * rng.NextDouble();
        return (x, lo + (hi - lo) * rng.NextDouble());
    }

    /// <summary>
    /// Tasks first..first+tasks−1: SupportX and QueryX the goals [tasks, 2] float32, SupportY and
    /// QueryY (split, index) [tasks, 2] int64. The episode shape is not read: the data of a task
    /// is what the policy collects.
    /// </summary>
    public MetaBatch Sample(Split split, long first, int tasks, EpisodeShape shape)
    {
        if (tasks < 1) throw new ArgumentOutOfRangeException(nameof(tasks), "a meta-batch needs at least one task");
        var goals = new float[tasks * 2];
        var ids = new long[tasks * 2];
        for (var t = 0; t < tasks; t++)
        {
            var (x, y) = GoalOf(split, first + t);
            (goals[2 * t], goals[2 * t + 1]) = ((float)x, (float)y);
            (ids[2 * t], ids[2 * t + 1]) = ((long)split, first + t);
        }
        return new MetaBatch(Torch.From(goals, tasks, 2), Torch.From(ids, tasks, 2), Torch.From(goals, tasks, 2), Torch.From(ids, tasks, 2));
    }

    public double[] Goal(Episode task)
    {
        var ids = task.SupportY.ToArray<long>();
        var (x, y) = GoalOf((Split)ids[0], ids[1]);
        return [x, y];
    }

    /// <summary>One move: the clipped velocity added, the reward at the new position, whether it reached the goal.</summary>
    public (double X, double Y, double Reward, bool Done) Step(double x, double y, double ax, double ay, double gx, double gy)
    {
        x += Math.Clamp(ax, -MaxSpeed, MaxSpeed);
        y += Math.Clamp(ay, -MaxSpeed, MaxSpeed);
        var (dx, dy) = (x - gx, y - gy);
        var squared = dx * dx + dy * dy;
        var reward = variant == NavigationVariant.Paper ? -squared : -Math.Sqrt(squared);
        return (x, y, reward, (squared < GoalRadius * GoalRadius));
    }

    public Trajectories Rollout(Episode task, int stream, int trajectories, Func<Tensor, Tensor> mean, double[] logStd)
    {
        var ids = task.SupportY.ToArray<long>();
        var (split, index) = ((Split)ids[0], ids[1]);
        var (gx, gy) = GoalOf(split, index);
        int n = trajectories, h = Steps, o = ObservationSize;
        var obs = new float[n * h * o];
        var actions = new float[n * h * 2];
        var rewards = new float[n * h];
        var lengths = new int[n];
        var rngs = new SplitMix64[n];
        for (var i = 0; i < n; i++)
            rngs[i] = new SplitMix64(SplitMix64.Mix(SplitMix64.ForEpisode(seed, split, index, 0x726F6C6C6F7574UL).NextUInt64() ^ SplitMix64.Mix(((ulong)stream << 32) + (ulong)i)));
        var x = new double[n];
        var y = new double[n];
        var live = Enumerable.Range(0, n).ToList();
        var std = logStd.Select(Math.Exp).ToArray();
        var input = new float[n * o];
        for (var t = 0; t < h && live.Count > 0; t++)
        {
            // Only trajectories still running are fed to the policy: its means never depend on the others.
            for (var k = 0; k < live.Count; k++)
            {
                var i = live[k];
                input[k * o] = (float)x[i];
                input[k * o + 1] = (float)y[i];
                if (observeGoal) (input[k * o + 2], input[k * o + 3]) = ((float)gx, (float)gy);
            }
            float[] mu;
            using (var scope = Torch.NewScope())
            using (Torch.NoGrad())
                mu = mean(Torch.From(input.AsSpan(0, live.Count * o), live.Count, o)).To(ScalarType.Float32).ToArray<float>();
            var still = new List<int>(live.Count);
            for (var k = 0; k < live.Count; k++)
            {
                var i = live[k];
                var row = i * h + t;
                obs[row * o] = (float)x[i];
                obs[row * o + 1] = (float)y[i];
                if (observeGoal) (obs[row * o + 2], obs[row * o + 3]) = ((float)gx, (float)gy);
                var ax = (float)(mu[2 * k] + std[0] * Normal(ref rngs[i]));
                var ay = (float)(mu[2 * k + 1] + std[1] * Normal(ref rngs[i]));
                (actions[2 * row], actions[2 * row + 1]) = (ax, ay);
                var (nx, ny, r, done) = Step(x[i], y[i], ax, ay, gx, gy);
                (x[i], y[i]) = (nx, ny);
                rewards[row] = (float)r;
                lengths[i] = t + 1;
                if (!done) still.Add(i);
            }
            live = still;
        }
        return new Trajectories(n, h, o, 2, obs, actions, rewards, lengths);
    }

    /// <summary>A standard normal draw (Box–Muller, one of the pair): libtorch's generator is not a pure function of the trajectory.</summary>
    private static double Normal(ref SplitMix64 rng)
    {
        var u = 1.0 - rng.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * rng.NextDouble());
    }

    public void Dispose() { }
}
