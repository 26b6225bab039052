using LibTorch;
using MetaRun.Algorithms;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>ABML's KL between Gaussians by hand, and its support ELBO and outer gradients against finite differences on a tiny network.</summary>
public class AbmlTests
{
    private static Abml Learner(int innerSteps = 1, double klWeight = 0.5) =>
        new(Tiny([4]), new Objective(false), innerLr: 0.3, innerSteps: innerSteps, testInnerSteps: innerSteps, samples: 2, testSamples: 3, klWeight: klWeight, seed: 5);

    [Fact]
    public void Kl_between_gaussians_matches_the_closed_form_by_hand()
    {
        using var scope = Torch.NewScope();
        // KL(N(0.5, 0.5²) ‖ N(0, 1)) = ln(1/0.5) + (0.25 + 0.25)/2 − ½ = ln 2 − 0.25;
        // KL(N(1, 1) ‖ N(−1, 2²)) = ln 2 + (1 + 4)/8 − ½ = ln 2 + 0.125; summed over both weights.
        var kl = Abml.Kl([Torch.From(new float[] { 0.5f, 1f }, 2)], [Torch.From(new float[] { (float)Math.Log(0.5), 0f }, 2)],
            [Torch.From(new float[] { 0f, -1f }, 2)], [Torch.From(new float[] { 0f, (float)Math.Log(2) }, 2)]);
        Assert.Equal(2 * Math.Log(2) - 0.125, kl.Item(), 5);
        // Zero between a Gaussian and itself.
        var same = Abml.Kl([Torch.From(new float[] { 0.3f }, 1)], [Torch.From(new float[] { -1f }, 1)], [Torch.From(new float[] { 0.3f }, 1)], [Torch.From(new float[] { -1f }, 1)]);
        Assert.Equal(0, same.Item(), 6);
    }

    [Fact]
    public void Support_elbo_gradient_matches_finite_differences_on_a_tiny_network()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        using var abml = Learner();
        // A posterior away from the prior, so the KL's gradient is not zero.
        var n = abml.OuterParameters.Count / 2;
        Tensor[] mu, logS;
        using (Torch.NoGrad())
        {
            mu = [.. abml.OuterParameters.Take(n).Select((p, i) => (p + 0.2 * (i + 1)).DetachFromScope().RequiresGrad_())];
            logS = [.. abml.OuterParameters.Skip(n).Select(p => (p * 0 + Math.Log(0.3)).DetachFromScope().RequiresGrad_())];
        }
        double Loss() { using var g = new Generator(9); return abml.SupportLoss(task.SupportX, task.SupportY, mu, logS, g).Item(); }
        Tensor?[] analytic;
        using (var g = new Generator(9)) analytic = Torch.Grad([abml.SupportLoss(task.SupportX, task.SupportY, mu, logS, g)], [.. mu, .. logS]);
        var names = abml.OuterParameterNames.Take(n).Select(s => "q.mu." + s).Concat(abml.OuterParameterNames.Take(n).Select(s => "q.log_sigma." + s)).ToArray();
        var sizeable = FiniteDifferences.Check([.. mu, .. logS], names, analytic, Loss, h: 2e-3, absTol: 2e-3, relTol: 0.02);
        Assert.True(sizeable >= 10, $"only {sizeable} sizeable gradient entries");
        foreach (var t in mu.Concat(logS)) t.Dispose();
    }

    [Fact]
    public void Outer_gradient_through_the_inner_loop_matches_finite_differences_for_every_parameter()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        using var abml = Learner(innerSteps: 2);
        using (Torch.NoGrad()) foreach (var p in abml.OuterParameters.Skip(abml.OuterParameters.Count / 2)) p.Fill_(Math.Log(0.2));
        Assert.Equal(["layer0.weight", "layer0.bias", "head.weight", "head.bias",
            "log_sigma.layer0.weight", "log_sigma.layer0.bias", "log_sigma.head.weight", "log_sigma.head.bias"], abml.OuterParameterNames);
        var r = abml.TaskGradient(task, 1.0);
        // The same noise on every call (a function of the seed, iteration and support set), so the loss is a smooth function of θ.
        var sizeable = FiniteDifferences.Check(abml.OuterParameters, abml.OuterParameterNames, r.Gradients, () => abml.OuterLoss(task).Loss.Item(),
            h: 2e-3, absTol: 3e-3, relTol: 0.03);
        Assert.True(sizeable >= 12, $"only {sizeable} sizeable gradient entries");
    }

    [Fact]
    public void Predictions_average_the_softmax_of_the_weight_samples()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        using var abml = Learner();
        var logits = abml.AdaptTo(task).Logits;
        var p = Values(F.Softmax(logits, 1));
        for (var i = 0; i < p.Length / 2; i++) Assert.Equal(1.0, p[2 * i] + p[2 * i + 1], 5);
        // The same episode gives the same prediction: the samples are a function of seed and episode.
        Close(logits, abml.AdaptTo(task).Logits, 0);
    }
}
