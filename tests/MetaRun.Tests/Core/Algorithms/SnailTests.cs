using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;

namespace MetaRun.Tests.Algorithms;

/// <summary>SNAIL's temporal-convolution and attention blocks against the paper's pseudocode written out by hand, and its causality.</summary>
public class SnailTests
{
    /// <summary>A 2-input MLP with one hidden layer of 3 (3-d embeddings, no batch norm) and a 2-way head.</summary>
    private static Mlp Tiny(ulong seed = 3)
    {
        using var g = new Generator(seed);
        return new Mlp(2, [3], 2, g, Device.Cpu);
    }

    private static Snail TinySnail(IModel model, int shots = 1) =>
        new(model, new Objective(false), seed: 5, [Snail.Block.Attend(2, 1), Snail.Block.Tc(1)], shots);

    internal static double[] D(Tensor t) => t.Detach().To(ScalarType.Float64).Contiguous().ToArray<double>();

    internal static void Near(IReadOnlyList<double> expected, IReadOnlyList<double> actual, double tolerance = 1e-5)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"element {i}: expected {expected[i]}, got {actual[i]}");
    }

    private static Dictionary<string, double[]> Weights(IMetaLearner l) =>
        l.OuterParameterNames.Zip(l.OuterParameters).ToDictionary(p => p.First, p => D(p.Second));

    [Fact]
    public void Forward_on_a_tiny_sequence_matches_the_papers_blocks_by_hand()
    {
        using var scope = Torch.NewScope();
        using var snail = TinySnail(Tiny());
        var w = Weights(snail);
        using var g = new Generator(17);
        const int T = 3, C0 = 5;                      // 2 ways · 1 shot + 1; 3 features + 2 label units
        var input = Torch.Randn([1, T, C0], generator: g);
        var actual = D(snail.Forward(input));

        var x = new List<double[]>();                   // x[t] grows by concatenation
        var flat = D(input);
        for (var t = 0; t < T; t++) x.Add(flat.Skip(t * C0).Take(C0).ToArray());
        double Affine(double[] m, double[] b, int row, double[] v) => b[row] + v.Select((vi, c) => m[row * v.Length + c] * vi).Sum();

        // AttentionBlock(K = 2, V = 1): causal softmax of q·k / √2.
        var q = x.Select(v => new[] { Affine(w["snail.block0.query.weight"], w["snail.block0.query.bias"], 0, v), Affine(w["snail.block0.query.weight"], w["snail.block0.query.bias"], 1, v) }).ToArray();
        var k = x.Select(v => new[] { Affine(w["snail.block0.key.weight"], w["snail.block0.key.bias"], 0, v), Affine(w["snail.block0.key.weight"], w["snail.block0.key.bias"], 1, v) }).ToArray();
        var val = x.Select(v => Affine(w["snail.block0.value.weight"], w["snail.block0.value.bias"], 0, v)).ToArray();
        for (var t = 0; t < T; t++)
        {
            var logits = Enumerable.Range(0, t + 1).Select(u => (q[t][0] * k[u][0] + q[t][1] * k[u][1]) / Math.Sqrt(2)).ToArray();
            var z = logits.Select(Math.Exp).ToArray();
            x[t] = [.. x[t], z.Select((e, u) => e / z.Sum() * val[u]).Sum()];
        }
        // TCBlock(T = 3, D = 1): ⌈log₂ 3⌉ = 2 dense blocks, dilations 2 and 4, kernel 2 (taps t − R and t).
        for (var i = 1; i <= 2; i++)
        {
            int r = 1 << i, c = x[0].Length;
            var kernel = w[$"snail.block1.dense{i}.weight"];   // [2, c, 2]
            var bias = w[$"snail.block1.dense{i}.bias"];
            var next = new double[T];
            for (var t = 0; t < T; t++)
            {
                double Out(int o) => bias[o] + Enumerable.Range(0, c).Sum(ch =>
                    kernel[(o * c + ch) * 2 + 1] * x[t][ch] + (t - r >= 0 ? kernel[(o * c + ch) * 2] * x[t - r][ch] : 0));
                next[t] = Math.Tanh(Out(0)) / (1 + Math.Exp(-Out(1)));
            }
            for (var t = 0; t < T; t++) x[t] = [.. x[t], next[t]];
        }
        for (var t = 0; t < T; t++)
            for (var n = 0; n < 2; n++)
                Assert.Equal(Affine(w["snail.output.weight"], w["snail.output.bias"], n, x[t]), actual[t * 2 + n], 5);
    }

    [Fact]
    public void Changing_a_later_position_never_changes_an_earlier_output()
    {
        using var scope = Torch.NewScope();
        using var snail = TinySnail(Tiny(), shots: 3);
        using var g = new Generator(2);
        var input = Torch.Randn([2, 7, 5], generator: g);
        var before = snail.Forward(input);
        var changed = Torch.Cat([input.Narrow(1, 0, 4), input.Narrow(1, 4, 3) + 1.5], 1);
        var after = snail.Forward(changed);
        Assert.Equal(D(before.Narrow(1, 0, 4)), D(after.Narrow(1, 0, 4)));
        Assert.NotEqual(D(before.Narrow(1, 4, 3)), D(after.Narrow(1, 4, 3)));
    }

    [Fact]
    public void A_query_sees_the_labelled_support_set_and_itself_but_no_label_of_its_own()
    {
        using var scope = Torch.NewScope();
        using var snail = TinySnail(Tiny());
        var support = Torch.From(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var query = Torch.From(new float[] { 7, 8, 9, 10, 11, 12 }, 2, 3);
        var s = D(snail.Sequences(support, Torch.From(new long[] { 1, 0 }, 2), query));   // [2 queries, 3 positions, 5]
        Assert.Equal([1, 2, 3, 0, 1, 4, 5, 6, 1, 0, 7, 8, 9, 0, 0], s.Take(15));
        Assert.Equal([1, 2, 3, 0, 1, 4, 5, 6, 1, 0, 10, 11, 12, 0, 0], s.Skip(15));
    }

    [Fact]
    public void Changing_a_query_label_or_another_query_never_changes_a_prediction()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(4);
        using var snail = TinySnail(new Mlp(2, [8], 2, g, Device.Cpu));
        var sx = Torch.Randn([2, 2], generator: g);
        var qx = Torch.Randn([3, 2], generator: g);
        var task = new Episode(sx, Torch.From(new long[] { 0, 1 }, 2), qx, Torch.From(new long[] { 0, 1, 1 }, 3));
        var before = D(snail.AdaptTo(task).Logits);
        Assert.Equal(before, D(snail.AdaptTo(task with { QueryY = Torch.From(new long[] { 1, 0, 0 }, 3) }).Logits));
        var otherLast = Torch.Cat([qx.Narrow(0, 0, 2), qx.Narrow(0, 2, 1) * -3]);
        var after = D(snail.AdaptTo(task with { QueryX = otherLast }).Logits);
        Assert.Equal(before.Take(4), after.Take(4));
        Assert.NotEqual(before.Skip(4), after.Skip(4));
    }

    [Fact]
    public void The_support_order_is_a_pure_function_of_the_seed_and_the_episode()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(8);
        var task = new Episode(Torch.Randn([10, 2], generator: g), Torch.From(Enumerable.Range(0, 10).Select(i => (long)(i % 2)).ToArray(), 10),
            Torch.Randn([2, 2], generator: g), Torch.From(new long[] { 0, 1 }, 2));
        using var a = TinySnail(Tiny(), shots: 5);
        using var b = TinySnail(Tiny(), shots: 5);
        using var otherSeed = new Snail(Tiny(), new Objective(false), seed: 6, [Snail.Block.Tc(1)], 5);
        Assert.Equal(a.Order(task), b.Order(task));
        Assert.Equal(a.Order(task), a.Order(task with { QueryX = Torch.Randn([2, 2], generator: g) }));
        Assert.NotEqual(a.Order(task), otherSeed.Order(task));
        Assert.NotEqual(a.Order(task), a.Order(task with { SupportX = Torch.Randn([10, 2], generator: g) }));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), a.Order(task).Order());
    }
}
