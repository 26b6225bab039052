using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;
using static MetaRun.Tests.Algorithms.SnailTests;

namespace MetaRun.Tests.Algorithms;

/// <summary>MANN's controller, content read and least-recently-used write against the paper's equations by hand, and its label shift.</summary>
public class MannTests
{
    private static Mann Tiny(int reads = 1)
    {
        using var g = new Generator(3);
        return new Mann(new Mlp(2, [3], 2, g, Device.Cpu), new Objective(false), seed: 9, hidden: 2, slots: 3, width: 2, reads: reads, decay: 0.9);
    }

    private static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));

    [Fact]
    public void One_step_updates_memory_usage_and_reads_as_the_paper_by_hand()
    {
        using var scope = Torch.NewScope();
        using var mann = Tiny();
        var w = mann.OuterParameterNames.Zip(mann.OuterParameters).ToDictionary(p => p.First, p => D(p.Second));
        // A state in mid-sequence: slot 1 is the least used, so it is cleared and the LRU term writes to it alone.
        double[] h0 = [0.3, -0.2], c0 = [0.1, 0.4], m0 = [0.5, -0.1, 0.2, 0.3, -0.4, 0.6], r0 = [0.05, -0.3], wr0 = [0.2, 0.3, 0.5], u0 = [0.8, 0.1, 0.6];
        double[] x = [0.7, -0.5, 0.25, 1, 0];   // 3 features, then the previous label one-hot
        var state = new Mann.State(T(h0, 1, 2), T(c0, 1, 2), T(m0, 1, 3, 2), T(r0, 1, 2), T(wr0, 1, 1, 3), T(u0, 1, 3), T([0, 1, 0], 1, 3));
        var (logits, next) = mann.Step(T(x, 1, 5), state);

        // Controller: gates (i, f, g, o) = W_ih [x ; r] + b_ih + W_hh h + b_hh.
        double[] input = [.. x, .. r0];
        double Gate(int row) => w["mann.controller.b_ih"][row] + w["mann.controller.b_hh"][row]
            + input.Select((v, j) => w["mann.controller.w_ih"][row * input.Length + j] * v).Sum()
            + h0.Select((v, j) => w["mann.controller.w_hh"][row * 2 + j] * v).Sum();
        var c = new double[2];
        var h = new double[2];
        for (var j = 0; j < 2; j++)
        {
            c[j] = Sigmoid(Gate(2 + j)) * c0[j] + Sigmoid(Gate(j)) * Math.Tanh(Gate(4 + j));
            h[j] = Sigmoid(Gate(6 + j)) * Math.Tanh(c[j]);
        }
        double Affine(string name, int row, double[] v) => w[$"{name}.bias"][row] + v.Select((vi, j) => w[$"{name}.weight"][row * v.Length + j] * vi).Sum();
        double[] key = [Math.Tanh(Affine("mann.key", 0, h)), Math.Tanh(Affine("mann.key", 1, h))];
        var alpha = Sigmoid(Affine("mann.gate", 0, h));
        // LRU write: w^w = σ(α) w^r_{t−1} + (1 − σ(α)) w^lu_{t−1}; the least-used slot (1) is cleared first.
        double[] lu = [0, 1, 0];
        var ww = wr0.Select((v, i) => alpha * v + (1 - alpha) * lu[i]).ToArray();
        var m = new double[6];
        for (var i = 0; i < 3; i++)
            for (var j = 0; j < 2; j++)
                m[i * 2 + j] = (i == 1 ? 0 : m0[i * 2 + j]) + ww[i] * key[j];
        // Content read: softmax over slots of cosine(key, M(i)).
        var norm = Math.Sqrt(key[0] * key[0] + key[1] * key[1]);
        var cos = Enumerable.Range(0, 3).Select(i => (key[0] * m[2 * i] + key[1] * m[2 * i + 1]) / (norm * Math.Sqrt(m[2 * i] * m[2 * i] + m[2 * i + 1] * m[2 * i + 1]))).ToArray();
        var wr = cos.Select(v => Math.Exp(v) / cos.Sum(Math.Exp)).ToArray();
        double[] r = [wr.Select((v, i) => v * m[2 * i]).Sum(), wr.Select((v, i) => v * m[2 * i + 1]).Sum()];
        var u = u0.Select((v, i) => 0.9 * v + wr[i] + ww[i]).ToArray();
        double[] o = [Affine("mann.output", 0, [.. h, .. r]), Affine("mann.output", 1, [.. h, .. r])];

        Near(h, D(next.H));
        Near(c, D(next.C));
        Near(m, D(next.Memory));
        Near(wr, D(next.ReadWeights));
        Near(r, D(next.Read));
        Near(u, D(next.Usage));
        var least = Array.IndexOf(u, u.Min());
        Assert.Equal(Enumerable.Range(0, 3).Select(i => i == least ? 1.0 : 0.0), D(next.LeastUsed));
        Near(o, D(logits));
    }

    [Fact]
    public void Least_used_marks_the_n_smallest_usages_for_n_read_heads()
    {
        using var scope = Torch.NewScope();
        using var mann = Tiny(reads: 2);
        var s = mann.Initial(ScalarType.Float32, Device.Cpu);
        // The start's usage ramp: the last two of three slots are the least used.
        Assert.Equal([0.0, 1, 1], D(s.LeastUsed));
    }

    [Fact]
    public void A_label_arrives_one_step_late_and_nothing_later_changes_an_earlier_prediction()
    {
        using var scope = Torch.NewScope();
        using var mann = Tiny(reads: 2);
        using var g = new Generator(6);
        var support = Torch.Randn([5, 3], generator: g);
        var labels = Torch.From(new long[] { 0, 1, 1, 0, 1 }, 5);
        var query = Torch.Randn([3, 3], generator: g);
        var (s0, q0, _) = mann.Run(support, labels, query);

        // Label 2 changes: predictions 0..2 (made before it arrived) stay, 3 and 4 move.
        var (s1, _, _) = mann.Run(support, Torch.From(new long[] { 0, 1, 0, 0, 1 }, 5), query);
        Assert.Equal(D(s0.Narrow(0, 0, 3)), D(s1.Narrow(0, 0, 3)));
        Assert.NotEqual(D(s0.Narrow(0, 3, 2)), D(s1.Narrow(0, 3, 2)));

        // Example 3 changes: predictions 0..2 stay.
        var other = Torch.Cat([support.Narrow(0, 0, 3), Torch.Randn([1, 3], generator: g), support.Narrow(0, 4, 1)]);
        var (s2, _, _) = mann.Run(other, labels, query);
        Assert.Equal(D(s0.Narrow(0, 0, 3)), D(s2.Narrow(0, 0, 3)));
        Assert.NotEqual(D(s0.Narrow(0, 3, 1)), D(s2.Narrow(0, 3, 1)));

        // Each query steps on its own: changing the last leaves the others.
        var (_, q3, _) = mann.Run(support, labels, Torch.Cat([query.Narrow(0, 0, 2), Torch.Randn([1, 3], generator: g)]));
        Assert.Equal(D(q0.Narrow(0, 0, 2)), D(q3.Narrow(0, 0, 2)));
        Assert.NotEqual(D(q0.Narrow(0, 2, 1)), D(q3.Narrow(0, 2, 1)));
    }

    [Fact]
    public void The_query_labels_are_never_read()
    {
        using var scope = Torch.NewScope();
        using var mann = Tiny();
        using var g = new Generator(7);
        var task = new Episode(Torch.Randn([4, 2], generator: g), Torch.From(new long[] { 0, 1, 1, 0 }, 4), Torch.Randn([3, 2], generator: g), Torch.From(new long[] { 0, 1, 1 }, 3));
        Assert.Equal(D(mann.AdaptTo(task).Logits), D(mann.AdaptTo(task with { QueryY = Torch.From(new long[] { 1, 0, 0 }, 3) }).Logits));
    }

    private static Tensor T(double[] v, params long[] shape) => Torch.From(v.Select(d => (float)d).ToArray(), shape);
}
