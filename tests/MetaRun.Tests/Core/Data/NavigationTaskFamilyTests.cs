using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>2D navigation: the point agent's dynamics, clipping, reward and termination, checked by hand; rollouts as a pure function of their coordinates.</summary>
public sealed class NavigationTaskFamilyTests
{
    private static Episode Task(NavigationTaskFamily family, Split split, long index)
    {
        var b = family.Sample(split, index, 1, default);
        return new Episode(b.SupportX[0], b.SupportY[0], b.QueryX[0], b.QueryY[0]);
    }

    [Fact]
    public void A_step_adds_the_velocity_clipped_to_a_tenth_per_axis_and_pays_minus_the_squared_distance()
    {
        var paper = new NavigationTaskFamily(1);
        var (x, y, r, done) = paper.Step(0, 0, 0.05, -0.3, 0.5, 0.5);
        Assert.Equal(0.05, x, 12);
        Assert.Equal(-0.1, y, 12);
        Assert.Equal(-(0.45 * 0.45 + 0.6 * 0.6), r, 12);
        Assert.False(done);
        var official = new NavigationTaskFamily(1, NavigationVariant.OfficialCode);
        Assert.Equal(-0.75, official.Step(0, 0, 0.05, -0.3, 0.5, 0.5).Reward, 12);
    }

    [Fact]
    public void An_episode_ends_within_a_hundredth_of_the_goal()
    {
        var family = new NavigationTaskFamily(1);
        Assert.True(family.Step(0.2, 0.2, 0.095, 0, 0.3, 0.2).Done);   // 0.005 from the goal
        Assert.False(family.Step(0.2, 0.2, 0.085, 0, 0.3, 0.2).Done);  // 0.015 from the goal
    }

    [Fact]
    public void Goals_are_uniform_in_the_unit_square_for_the_paper_and_centred_for_the_official_code()
    {
        var paper = new NavigationTaskFamily(3);
        var official = new NavigationTaskFamily(3, NavigationVariant.OfficialCode);
        var p = Enumerable.Range(0, 500).Select(i => paper.GoalOf(Split.Train, i)).ToList();
        var o = Enumerable.Range(0, 500).Select(i => official.GoalOf(Split.Train, i)).ToList();
        Assert.All(p, g => Assert.True(g.X is >= 0 and < 1 && g.Y is >= 0 and < 1));
        Assert.All(o, g => Assert.True(g.X is >= -0.5 and < 0.5 && g.Y is >= -0.5 and < 0.5));
        Assert.InRange(p.Average(g => g.X), 0.45, 0.55);
        Assert.NotEqual(paper.GoalOf(Split.Train, 0), paper.GoalOf(Split.Test, 0));
    }

    [Fact]
    public void A_policy_heading_for_the_goal_follows_the_dynamics_step_by_step_and_stops_there()
    {
        using var scope = Torch.NewScope();
        var family = new NavigationTaskFamily(5);
        var task = Task(family, Split.Train, 7);
        var (gx, gy) = family.GoalOf(Split.Train, 7);
        // Mean action: goal − position, so far away the clipping binds and near it the step lands on the goal; σ = e^−30 leaves no noise.
        Tensor Mean(Tensor obs) => (Torch.From(new[] { (float)gx, (float)gy }, 2) - obs);
        var d = family.Rollout(task, 0, 3, Mean, [-30, -30]);
        Assert.All(d.Lengths, l => Assert.True(l < NavigationTaskFamily.Steps));
        double x = 0, y = 0, total = 0;
        for (var t = 0; t < d.Lengths[0]; t++)
        {
            Assert.Equal((float)x, d.Observations[t * 2], 5);
            Assert.Equal((float)y, d.Observations[t * 2 + 1], 5);
            var (ax, ay) = (d.Actions[t * 2], d.Actions[t * 2 + 1]);
            Assert.Equal(gx - x, ax, 4);
            x += Math.Clamp(ax, -0.1, 0.1);
            y += Math.Clamp(ay, -0.1, 0.1);
            var reward = -((x - gx) * (x - gx) + (y - gy) * (y - gy));
            Assert.Equal(reward, d.Rewards[t], 5);
            total += reward;
        }
        Assert.True(Math.Sqrt((x - gx) * (x - gx) + (y - gy) * (y - gy)) < 0.01, "the last step reached the goal");
        Assert.Equal(total, d.AverageReturn(), 4);
        Assert.All(d.Rewards.Skip(d.Lengths[0]).Take(NavigationTaskFamily.Steps - d.Lengths[0]), r => Assert.Equal(0, r));
    }

    [Fact]
    public void Rollouts_are_a_pure_function_of_task_stream_and_trajectory()
    {
        using var scope = Torch.NewScope();
        var family = new NavigationTaskFamily(5);
        Tensor Zero(Tensor obs) => obs * 0;
        var a = family.Rollout(Task(family, Split.Train, 3), 1, 4, Zero, [0, 0]);
        var again = family.Rollout(Task(new NavigationTaskFamily(5), Split.Train, 3), 1, 4, Zero, [0, 0]);
        var fewer = family.Rollout(Task(family, Split.Train, 3), 1, 2, Zero, [0, 0]);
        var otherStream = family.Rollout(Task(family, Split.Train, 3), 2, 4, Zero, [0, 0]);
        Assert.Equal(a.Actions, again.Actions);
        Assert.Equal(a.Actions.Take(2 * NavigationTaskFamily.Steps * 2), fewer.Actions);
        Assert.NotEqual(a.Actions, otherStream.Actions);
        Assert.NotEqual(a.Actions.Take(200), a.Actions.Skip(200).Take(200));
        Assert.InRange(a.Actions.Average(v => (double)v * v), 0.8, 1.2); // unit-σ Gaussian noise
    }
}
