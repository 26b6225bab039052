using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;
using static MetaRun.Tests.Algorithms.SnailTests;

namespace MetaRun.Tests.Algorithms;

/// <summary>The Conditional Neural Process's encoder, mean aggregation, decoder and Gaussian likelihood by hand, and its permutation invariance.</summary>
public class CnpTests
{
    private static Cnp Regression(int hidden = 2)
    {
        using var g = new Generator(3);
        return new Cnp(new Mlp(1, [4], 1, g, Device.Cpu), new Objective(true), seed: 4, inputs: 1, hidden: hidden);
    }

    private static Cnp Classifier()
    {
        using var g = new Generator(3);
        return new Cnp(new Mlp(2, [4], 3, g, Device.Cpu), new Objective(false), seed: 4, inputs: 2, hidden: 5);
    }

    [Fact]
    public void Forward_and_likelihood_on_a_tiny_task_match_a_hand_computation()
    {
        using var scope = Torch.NewScope();
        using var cnp = Regression();
        var w = cnp.OuterParameterNames.Zip(cnp.OuterParameters).ToDictionary(p => p.First, p => D(p.Second));
        double[] sx = [-1.5, 0.5], sy = [0.8, -0.3], qx = [1.0], qy = [0.4];
        var task = new Episode(T(sx, 2, 1), T(sy, 2, 1), T(qx, 1, 1), T(qy, 1, 1));

        double[] Layer(string net, int l, double[] v, bool relu)
        {
            var bias = w[$"cnp.{net}.layer{l}.bias"];
            var weight = w[$"cnp.{net}.layer{l}.weight"];
            return bias.Select((b, o) => b + v.Select((vi, j) => weight[o * v.Length + j] * vi).Sum()).Select(z => relu ? Math.Max(z, 0) : z).ToArray();
        }
        double[] Net(string net, double[] v, int layers)
        {
            for (var l = 0; l < layers; l++) v = Layer(net, l, v, relu: l < layers - 1);
            return v;
        }
        var r1 = Net("encoder", [sx[0], sy[0]], 3);
        var r2 = Net("encoder", [sx[1], sy[1]], 3);
        var r = r1.Zip(r2, (a, b) => (a + b) / 2).ToArray();
        var output = Net("decoder", [qx[0], .. r], 3);
        var mean = output[0];
        var std = 0.1 + 0.9 * Math.Log(1 + Math.Exp(output[1]));
        var nll = 0.5 * Math.Log(2 * Math.PI) + Math.Log(std) + (qy[0] - mean) * (qy[0] - mean) / (2 * std * std);

        var (m, s) = cnp.PredictiveDistribution(task);
        Near([mean], D(m));
        Near([std], D(s));
        Near([nll], [cnp.TaskGradient(task, 1.0).Loss]);
        Near([(qy[0] - mean) * (qy[0] - mean)], [cnp.Evaluate(task).Loss]);   // evaluation's headline: the mean's MSE, as MAML's
    }

    [Fact]
    public void Permuting_the_support_set_leaves_every_prediction_unchanged()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(5);
        int[] perm = [3, 0, 4, 1, 2];
        var index = Torch.From(perm.Select(i => (long)i).ToArray(), 5);

        using var regression = Regression(hidden: 8);
        var task = new Episode(Torch.Randn([5, 1], generator: g), Torch.Randn([5, 1], generator: g), Torch.Randn([4, 1], generator: g), Torch.Randn([4, 1], generator: g));
        var permuted = task with { SupportX = task.SupportX.IndexSelect(0, index), SupportY = task.SupportY.IndexSelect(0, index) };
        var (m0, s0) = regression.PredictiveDistribution(task);
        var (m1, s1) = regression.PredictiveDistribution(permuted);
        Near(D(m0), D(m1), 1e-6);
        Near(D(s0), D(s1), 1e-6);

        using var classifier = Classifier();
        var labelled = new Episode(Torch.Randn([5, 2], generator: g), Torch.From(new long[] { 0, 1, 2, 0, 1 }, 5), Torch.Randn([4, 2], generator: g), Torch.From(new long[] { 2, 1, 0, 0 }, 4));
        var shuffled = labelled with { SupportX = labelled.SupportX.IndexSelect(0, index), SupportY = labelled.SupportY.IndexSelect(0, index) };
        Near(D(classifier.AdaptTo(labelled).Logits), D(classifier.AdaptTo(shuffled).Logits), 1e-6);
        // The labels matter: swapping two classes' labels changes the scores.
        var relabelled = labelled with { SupportY = Torch.From(new long[] { 1, 0, 2, 1, 0 }, 5) };
        Assert.NotEqual(D(classifier.AdaptTo(labelled).Logits), D(classifier.AdaptTo(relabelled).Logits));
    }

    [Fact]
    public void The_standard_deviation_never_falls_below_its_floor()
    {
        using var scope = Torch.NewScope();
        var std = D(Cnp.Std(Torch.From(new float[] { -80, -3, 0, 3, 80 }, 5)));
        Assert.All(std, s => Assert.True(s >= 0.1 && double.IsFinite(s)));
        Near([0.1, 0.1 + 0.9 * Math.Log(1 + Math.Exp(-3)), 0.1 + 0.9 * Math.Log(2), 0.1 + 0.9 * Math.Log(1 + Math.Exp(3)), 0.1 + 0.9 * 80], std, 1e-4);
    }

    private static Tensor T(double[] v, params long[] shape) => Torch.From(v.Select(d => (float)d).ToArray(), shape);
}
