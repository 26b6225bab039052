using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Models;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>Matching Networks' cosine attention, and its full context embeddings (algorithm.fce) against the appendix's equations written out by hand.</summary>
public class MatchingNetTests
{
    /// <summary>A 3-input MLP with one hidden layer of 4: D = 4 embeddings (no batch norm, so support and query embed alike apart or together).</summary>
    private static Mlp Tiny(ulong seed = 3)
    {
        using var g = new Generator(seed);
        return new Mlp(3, [4], 1, g, Device.Cpu);
    }

    private static Episode Task()
    {
        using var g = new Generator(11);
        var sx = Torch.Randn([4, 3], generator: g);
        var qx = Torch.Randn([3, 3], generator: g);
        return new Episode(sx, Torch.From(new long[] { 0, 1, 1, 0 }, 4), qx, Torch.From(new long[] { 1, 0, 1 }, 3));
    }

    /// <summary>PyTorch's LSTM cell from its definition: gates (i, f, g, o) = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh.</summary>
    private static (Tensor H, Tensor C) Cell(Tensor x, Tensor h, Tensor c, Tensor[] w)
    {
        var gates = x.MatMul(w[0].Transpose(0, 1)) + w[2] + h.MatMul(w[1].Transpose(0, 1)) + w[3];
        var n = h.Size(1);
        Tensor Gate(int k) => gates.Narrow(1, k * n, n);
        var next = Gate(1).Sigmoid() * c + Gate(0).Sigmoid() * Gate(2).Tanh();
        return (Gate(3).Sigmoid() * next.Tanh(), next);
    }

    [Fact]
    public void FullContextEmbeddingsMatchTheAppendixComputedOneExampleAtATime()
    {
        using var scope = Torch.NewScope();
        var model = Tiny();
        using var net = new MatchingNet(model, new Objective(false), fullContext: true, seed: 7);
        var task = Task();
        Tensor[] Weights(string lstm) => new[] { "w_ih", "w_hh", "b_ih", "b_hh" }.Select(p => net.OuterParameters[net.OuterParameterNames.ToList().IndexOf($"fce.{lstm}.{p}")]).ToArray();
        Assert.Equal([16, 4], Weights("g.fw")[0].Shape);
        Assert.Equal([32, 8], Weights("f")[1].Shape);

        using var noGrad = Torch.NoGrad();
        var s = model.Embed(task.SupportX, model.Parameters);
        var q = model.Embed(task.QueryX, model.Parameters);
        const int n = 4, d = 4;
        // g: forward and backward passes over the support set, plus the skip connection.
        var fw = new Tensor[n];
        var bw = new Tensor[n];
        var (h, c) = (Torch.Zeros([1, d]), Torch.Zeros([1, d]));
        for (var i = 0; i < n; i++) { (h, c) = Cell(s[i].Unsqueeze(0), h, c, Weights("g.fw")); fw[i] = h; }
        (h, c) = (Torch.Zeros([1, d]), Torch.Zeros([1, d]));
        for (var i = n - 1; i >= 0; i--) { (h, c) = Cell(s[i].Unsqueeze(0), h, c, Weights("g.bw")); bw[i] = h; }
        var g = Torch.Cat(Enumerable.Range(0, n).Select(i => fw[i] + bw[i] + s[i].Unsqueeze(0)).ToArray());
        // f: one query at a time, K = n reads, state [h, r] of width 2D, h_0 = f'(x̂), c_0 = 0.
        var f = new Tensor[3];
        for (var j = 0; j < 3; j++)
        {
            var x = q[j].Unsqueeze(0);
            var (hk, ck) = (x, Torch.Zeros([1, 2 * d]));
            for (var k = 0; k < n; k++)
            {
                var dots = Enumerable.Range(0, n).Select(i => (hk * g[i].Unsqueeze(0)).Sum().Item()).ToArray();
                var max = dots.Max();
                var weights = dots.Select(v => Math.Exp(v - max)).ToArray();
                var r = Torch.Zeros([1, d]);
                for (var i = 0; i < n; i++) r = r + weights[i] / weights.Sum() * g[i].Unsqueeze(0);
                var (hHat, cNext) = Cell(x, Torch.Cat([hk, r], 1), ck, Weights("f"));
                (hk, ck) = (hHat.Narrow(1, 0, d) + x, cNext);
            }
            f[j] = hk;
        }
        var expected = Values(MatchingNet.LogProbabilities(Torch.Cat(f), g, task.SupportY, ways: 2));
        var actual = Values(net.AdaptTo(task).Logits);
        Assert.Equal(6, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5, $"element {i}: by hand {expected[i]}, learner {actual[i]}");
        // The context changes the answer: the same body without FCE scores the raw embeddings.
        var plain = Values(MatchingNet.LogProbabilities(q, s, task.SupportY, ways: 2));
        Assert.Contains(plain.Zip(actual), p => Math.Abs(p.First - p.Second) > 1e-3);
        // What AdaptTo saves as the adapted state is g(x_i), not the body's embeddings.
        var saved = net.AdaptTo(task).State.Single(kv => kv.Key == "support_embeddings").Value;
        Assert.All(Values(g).Zip(Values(saved)), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-5, $"g by hand {p.First}, saved {p.Second}"));
    }

    [Fact]
    public void FullContextTaskGradientMatchesFiniteDifferencesForEveryParameter()
    {
        using var scope = Torch.NewScope();
        var task = Task();
        using var net = new MatchingNet(Tiny(), new Objective(false), fullContext: true, seed: 7);
        Assert.Equal(["layer0.weight", "layer0.bias",
            "fce.g.fw.w_ih", "fce.g.fw.w_hh", "fce.g.fw.b_ih", "fce.g.fw.b_hh",
            "fce.g.bw.w_ih", "fce.g.bw.w_hh", "fce.g.bw.b_ih", "fce.g.bw.b_hh",
            "fce.f.w_ih", "fce.f.w_hh", "fce.f.b_ih", "fce.f.b_hh"], net.OuterParameterNames);
        // h = 2e-3: small enough not to step over a ReLU kink, large for float32 losses.
        var nonzero = FiniteDifferences.Check(net.OuterParameters, net.OuterParameterNames, net.TaskGradient(task, 1.0).Gradients,
            () => net.Evaluate(task).Loss, h: 2e-3, absTol: 2e-3, relTol: 0.02);
        // A check of zeros against zeros would pass with the LSTMs cut out of the graph.
        Assert.True(nonzero > 20, $"only {nonzero} sizeable gradient entries");
    }

    [Fact]
    public void FceWeightsComeFromTheRunSeedAndAreAbsentWhenOff()
    {
        using var scope = Torch.NewScope();
        using var a = new MatchingNet(Tiny(), new Objective(false), fullContext: true, seed: 7);
        using var b = new MatchingNet(Tiny(), new Objective(false), fullContext: true, seed: 7);
        using var other = new MatchingNet(Tiny(), new Objective(false), fullContext: true, seed: 8);
        for (var i = 2; i < a.OuterParameters.Count; i++) Assert.Equal(Values(a.OuterParameters[i]), Values(b.OuterParameters[i]));
        Assert.NotEqual(Values(a.OuterParameters[^1]), Values(other.OuterParameters[^1]));
        // U(±1/√hidden): hidden D = 4 for g, 2D = 8 for f.
        Assert.All(Values(a.OuterParameters[2]), v => Assert.InRange(Math.Abs(v), 0, 0.5));
        Assert.All(Values(a.OuterParameters[^1]), v => Assert.InRange(Math.Abs(v), 0, 1 / Math.Sqrt(8)));

        using var off = new MatchingNet(Tiny(), new Objective(false));
        Assert.False(off.FullContext);
        Assert.Equal(["layer0.weight", "layer0.bias"], off.OuterParameterNames);
    }

    [Fact]
    public void FceIsAMatchingNetKeyAndAConfigErrorElsewhere()
    {
        var config = ConfigLoader.Parse("data: {dataset: omniglot}\nalgorithm: {name: matchingnet, fce: true}\n", "t.yaml");
        Assert.True(config.Algorithm.Fce);
        using (var scope = Torch.NewScope())
        using (var learner = AlgorithmRegistry.Create(config.Algorithm, Tiny(), new Objective(false), seed: 1))
            Assert.Contains("fce.f.w_hh", learner.OuterParameterNames);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("data: {dataset: omniglot}\nalgorithm: {name: protonet, fce: true}\n", "t.yaml"));
        Assert.Contains("'algorithm.fce' is not used by protonet", e.Message);
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("data: {dataset: omniglot}\nalgorithm: {name: matchingnet, fce: maybe}\n", "t.yaml"));
        Assert.Contains("fce", e.Message);
    }

    [Fact]
    public void MatchingNetScoresQueriesByCosineAttentionOverTheSupportLabels()
    {
        using var scope = Torch.NewScope();
        // Support: (1,0) class 0, (0,2) class 1, (3,0) class 0. Query (1,1): cosines 1/√2 to each direction.
        var support = Torch.From(new float[] { 1, 0, 0, 2, 3, 0 }, 3, 2);
        var query = Torch.From(new float[] { 1, 1, 0, 5 }, 2, 2);
        var logP = MatchingNet.LogProbabilities(query, support, Torch.From(new long[] { 0, 1, 0 }, 3), ways: 2);
        // Query 1: attention 1/3 each, so P(0) = 2/3, P(1) = 1/3. Query 2 (0,5): cosines 0, 1, 0 → e/(e + 2) to class 1.
        var e = Math.E;
        Close(Torch.From(new float[] { (float)Math.Log(2.0 / 3), (float)Math.Log(1.0 / 3), (float)Math.Log(2 / (e + 2)), (float)Math.Log(e / (e + 2)) }, 2, 2), logP);
    }
}
