using LibTorch;
using MetaRun.Algorithms;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>BMAML's SVGD step by hand for two particles in one dimension, and its Chaser loss with the leader held fixed.</summary>
public class BmamlTests
{
    [Fact]
    public void Svgd_step_for_two_particles_in_one_dimension_matches_a_hand_computation()
    {
        using var scope = Torch.NewScope();
        // Particles x₁ = 0, x₂ = 1; ∇log p = g₁ = 2, g₂ = −1; step α = 0.1.
        // Median heuristic with M = 2: med = 1, h = 1² / ln 2, so k₁₂ = exp(−1/h) = exp(−ln 2) = ½, k₁₁ = 1.
        // φ(x₁) = ½ [k₁₁ g₁ + k₂₁ g₂ + ∇x₂ k(x₂, x₁)] = ½ [2 − ½ − (2/h)(1 − 0)·½] = ½ [1.5 − ln 2]
        // φ(x₂) = ½ [k₁₂ g₁ + k₂₂ g₂ + ∇x₁ k(x₁, x₂)] = ½ [1 − 1 − (2/h)(0 − 1)·½] = ½ ln 2
        var h = 1 / Math.Log(2);
        IReadOnlyList<Tensor>[] theta = [[Torch.From(new float[] { 0f }, 1)], [Torch.From(new float[] { 1f }, 1)]];
        IReadOnlyList<Tensor>[] grads = [[Torch.From(new float[] { 2f }, 1)], [Torch.From(new float[] { -1f }, 1)]];
        var moved = Bmaml.SvgdStep(theta, grads, 0.1);
        Assert.Equal(0 + 0.1 * 0.5 * (1.5 - 2 / h * 0.5), moved[0][0].Item(), 6);
        Assert.Equal(1 + 0.1 * 0.5 * (2 / h * 0.5), moved[1][0].Item(), 6);
        Assert.Equal(0.5 * Math.Log(2), 0.5 * (2 / h * 0.5), 12);
    }

    [Fact]
    public void The_median_heuristic_takes_the_median_distance_between_distinct_particles()
    {
        // Three particles, squared distances 1, 4, 9 between the pairs: median distance 2, h = 4 / ln 3.
        double[] sq = [0, 1, 4, /**/ 1, 0, 9, /**/ 4, 9, 0];
        Assert.Equal(4 / Math.Log(3), Bmaml.Bandwidth(sq, 3), 12);
    }

    [Fact]
    public void The_chaser_loss_sends_no_gradient_through_its_target()
    {
        using var scope = Torch.NewScope();
        var chaser = Torch.From(new float[] { 1f, 2f }, 2).RequiresGrad_();
        var source = Torch.From(new float[] { 0.5f, -1f }, 2).RequiresGrad_();
        var leader = source * 3;   // a target computed from a differentiable tensor
        var loss = Bmaml.ChaserLoss([[chaser]], [[leader]]);
        var g = Torch.Grad([loss], [chaser, source], allowUnused: true);
        // d/dchaser ‖c − l‖² = 2 (c − l) = 2 ([1, 2] − [1.5, −3]) = [−1, 10]; nothing reaches the leader's source.
        Close(Torch.From(new float[] { -1f, 10f }, 2), g[0]);
        Assert.True(g[1] is null || Values(g[1]!).All(v => v == 0), "gradient flowed into the leader");
    }

    [Fact]
    public void Task_gradient_is_the_chaser_distance_gradient_with_the_leader_as_a_constant()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        using var bmaml = new Bmaml(Tiny([4]), new Objective(false), innerLr: 0.2, innerSteps: 1, testInnerSteps: 1, particleCount: 3, chaserSteps: 2, seed: 4);
        Assert.Equal(3 * 4, bmaml.OuterParameters.Count);
        var r = bmaml.TaskGradient(task, 1.0);
        // By hand: the chaser through one SVGD step, the leader two more steps on support ∪ query, as constants.
        var chaser = bmaml.Svgd(bmaml.Particles, task.SupportX, task.SupportY, 1, createGraph: true);
        var leader = bmaml.Svgd([.. chaser.Select(p => (IReadOnlyList<Tensor>)[.. p.Select(w => w.Detach().RequiresGrad_())])],
            Torch.Cat([task.SupportX, task.QueryX]), Torch.Cat([task.SupportY, task.QueryY]), 2, createGraph: false);
        Tensor? distance = null;
        for (var m = 0; m < 3; m++)
            for (var w = 0; w < 4; w++)
            {
                var target = Torch.From(Values(leader[m][w]), leader[m][w].Shape);   // a plain constant
                var d = (chaser[m][w] - target).Square().Sum();
                distance = distance == null ? d : distance + d;
            }
        var expected = Torch.Grad([distance!], bmaml.OuterParameters);
        for (var i = 0; i < expected.Length; i++) Close(expected[i]!, r.Gradients[i], 1e-4);
        Assert.Contains(Values(r.Gradients[0]!), v => Math.Abs(v) > 1e-4);
    }

    [Fact]
    public void Predictions_average_the_particles_softmax()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        using var bmaml = new Bmaml(Tiny([4]), new Objective(false), innerLr: 0.2, innerSteps: 1, testInnerSteps: 1, particleCount: 2, chaserSteps: 1, seed: 4);
        var adapted = bmaml.Svgd(bmaml.Particles, task.SupportX, task.SupportY, 1, createGraph: false);
        using var model = Tiny([4]);
        var mean = (F.Softmax(model.Forward(task.QueryX, adapted[0]), 1) + F.Softmax(model.Forward(task.QueryX, adapted[1]), 1)) / 2;
        Close(mean, F.Softmax(bmaml.AdaptTo(task).Logits, 1), 1e-5);
    }
}
