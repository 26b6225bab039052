using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// MLDG's outer gradient against finite differences of its objective, computed here apart from
/// the learner; its test-time scoring against ProtoNet's.
/// </summary>
public class MldgTests
{
    private const int Domains = 3, Ways = 2, Shots = 2, Queries = 3;

    private static Mlp Tiny(ulong seed = 3)
    {
        using var g = new Generator(seed);
        return new Mlp(3, [4], 1, g, Device.Cpu);
    }

    /// <summary>A packed task: three domains' 2-way 2-shot 3-query episodes one after another, domain d's labels offset by d·N.</summary>
    private static Episode Packed(long seed = 11)
    {
        using var g = new Generator((ulong)seed);
        var sx = Torch.Randn([Domains * Ways * Shots, 3], generator: g);
        var qx = Torch.Randn([Domains * Ways * Queries, 3], generator: g);
        long[] Labels(int per) => [.. Enumerable.Range(0, Domains).SelectMany(d => Enumerable.Range(0, Ways).SelectMany(j => Enumerable.Repeat((long)(d * Ways + j), per)))];
        return new Episode(sx, Torch.From(Labels(Shots), Domains * Ways * Shots), qx, Torch.From(Labels(Queries), Domains * Ways * Queries));
    }

    private static Mldg Learner(Mlp model, double innerLr, int innerSteps, double beta, int testSteps = 0) =>
        new(model, new Objective(false), null, new EpisodeShape(Ways, Shots, Queries), Domains, tasks: 1, innerLr, innerSteps, testSteps, beta, seed: 1);

    /// <summary>
    /// The objective written out: per domain the prototypical loss (support and query through the
    /// body together), L_tr the mean over the first two, k inner steps on it, β·L_te on the last.
    /// Returns (outer loss, held-out loss).
    /// </summary>
    private static (double Outer, double HeldOut) Objective(Mlp model, Episode task, double alpha, int steps, double beta)
    {
        var bodyIdx = model.IndicesOf(ParameterRole.Body, ParameterRole.BatchNorm);
        Tensor Loss(Tensor[] w, int d)
        {
            var sx = task.SupportX.Narrow(0, d * Ways * Shots, Ways * Shots);
            var qx = task.QueryX.Narrow(0, d * Ways * Queries, Ways * Queries);
            var e = model.Embed(Torch.Cat([sx, qx]), w);
            var (s, q) = (e.Narrow(0, 0, Ways * Shots), e.Narrow(0, Ways * Shots, Ways * Queries));
            // Supports are grouped by class: class j's are rows j·K .. j·K+K−1.
            var protos = Torch.Cat(Enumerable.Range(0, Ways).Select(j => s.Narrow(0, j * Shots, Shots).Mean(0, keepDim: true)).ToArray());
            var logits = -(q.Unsqueeze(1) - protos.Unsqueeze(0)).Square().Sum(2);
            var y = Torch.From(Enumerable.Range(0, Ways).SelectMany(j => Enumerable.Repeat((long)j, Queries)).ToArray(), Ways * Queries);
            return F.CrossEntropy(logits, y);
        }
        Tensor Train(Tensor[] w) => (Loss(w, 0) + Loss(w, 1)) / 2;
        var theta = model.Parameters.Select(p => p.Detach().RequiresGrad_()).ToArray();
        var outerTrain = Train(theta).Item();
        var fast = theta;
        for (var s = 0; s < steps; s++)
        {
            var grads = Torch.Grad([Train(fast)], bodyIdx.Select(i => fast[i]).ToArray());
            var next = fast.ToArray();
            for (var k = 0; k < bodyIdx.Length; k++) next[bodyIdx[k]] = (fast[bodyIdx[k]] - alpha * grads[k]!).Detach().RequiresGrad_();
            fast = next;
        }
        var heldOut = Loss(fast, 2).Item();
        return (outerTrain + beta * heldOut, heldOut);
    }

    [Theory]
    [InlineData(0.5, 1, 1.0)]
    [InlineData(0.3, 2, 0.5)]
    public void OuterGradientMatchesFiniteDifferencesOfTrainLossPlusBetaTimesHeldOutLossAfterTheStep(double alpha, int steps, double beta)
    {
        using var scope = Torch.NewScope();
        var task = Packed();
        var model = Tiny();
        using var mldg = Learner(model, alpha, steps, beta);
        Assert.Equal(["layer0.weight", "layer0.bias"], mldg.OuterParameterNames);
        var result = mldg.TaskGradient(task, 1.0);
        // The task's metrics are the held-out domain's after the meta-train step.
        Assert.Equal(Objective(model, task, alpha, steps, beta).HeldOut, result.Loss, 4);
        var analytic = result.Gradients.Select(g => g!.Detach().Contiguous().ToArray<float>()).ToArray();
        const double h = 2e-3;
        for (var k = 0; k < mldg.OuterParameters.Count; k++)
            for (var e = 0; e < analytic[k].Length; e += 3)
            {
                double With(double delta)
                {
                    using (Torch.NoGrad()) mldg.OuterParameters[k].Flatten().Narrow(0, e, 1).Add_(Torch.Scalar((float)delta));
                    return Objective(model, task, alpha, steps, beta).Outer;
                }
                var (plus, minus) = (With(h), With(-2 * h));
                With(h);
                var numeric = (plus - minus) / (2 * h);
                Assert.True(Math.Abs(numeric - analytic[k][e]) <= 3e-3 + 0.03 * Math.Abs(numeric), $"{mldg.OuterParameterNames[k]}[{e}]: finite differences {numeric}, autograd {analytic[k][e]}");
            }
        // The weight (1/tasks) scales the gradient.
        var half = mldg.TaskGradient(task, 0.5).Gradients[0]!.Detach().Contiguous().ToArray<float>();
        for (var i = 0; i < half.Length; i++) Assert.Equal(analytic[0][i] / 2, half[i], 5);
    }

    [Fact]
    public void TheHeldOutTermSteersTheGradient()
    {
        // β = 0 leaves only L_tr(θ), whose gradient does not depend on the held-out domain.
        using var scope = Torch.NewScope();
        var task = Packed();
        using var a = Learner(Tiny(), 0.5, 1, 0.0);
        using var b = Learner(Tiny(), 0.5, 1, 1.0);
        var g0 = a.TaskGradient(task, 1).Gradients[0]!.Detach().Contiguous().ToArray<float>();
        var g1 = b.TaskGradient(task, 1).Gradients[0]!.Detach().Contiguous().ToArray<float>();
        Assert.True(g0.Zip(g1).Max(p => Math.Abs(p.First - p.Second)) > 1e-4);
        // Changing only the held-out domain's queries changes the β = 1 gradient and not the β = 0 one.
        var other = Packed(12);
        var moved = task with { QueryX = Torch.Cat([task.QueryX.Narrow(0, 0, 2 * Ways * Queries), other.QueryX.Narrow(0, 2 * Ways * Queries, Ways * Queries)]) };
        Assert.Equal(g0, a.TaskGradient(moved, 1).Gradients[0]!.Detach().Contiguous().ToArray<float>());
        Assert.NotEqual(g1, b.TaskGradient(moved, 1).Gradients[0]!.Detach().Contiguous().ToArray<float>());
    }

    [Fact]
    public void WithoutAdaptationItScoresAsProtoNetAndThePrototypeHeadStartsThere()
    {
        using var scope = Torch.NewScope();
        var task = Packed();
        // One domain's 2-way episode, labels 0..1.
        var episode = new Episode(task.SupportX.Narrow(0, 0, Ways * Shots), task.SupportY.Narrow(0, 0, Ways * Shots),
            task.QueryX.Narrow(0, 0, Ways * Queries), task.QueryY.Narrow(0, 0, Ways * Queries));
        using var proto = new ProtoNet(Tiny(), new Objective(false));
        var expected = proto.AdaptTo(episode).Logits.Contiguous().ToArray<float>();
        using var none = Learner(Tiny(), 0.5, 1, 1.0, testSteps: 0);
        Assert.Equal(expected, none.AdaptTo(episode).Logits.Contiguous().ToArray<float>());
        Assert.Equal(proto.Evaluate(episode).Accuracy, none.Evaluate(episode).Accuracy);
        // With steps at a zero rate the head W = 2c, b = −‖c‖² differs from −‖f − c‖² by ‖f‖², the same for every class.
        using var still = Learner(Tiny(), 0.0, 1, 1.0, testSteps: 3);
        var head = still.AdaptTo(episode).Logits.Contiguous().ToArray<float>();
        for (var q = 0; q < Ways * Queries; q++)
            Assert.Equal(head[q * Ways] - expected[q * Ways], head[q * Ways + 1] - expected[q * Ways + 1], 3);
        // A positive rate fine-tunes: the support loss falls.
        using var tuned = Learner(Tiny(), 0.1, 1, 1.0, testSteps: 20);
        var state = tuned.AdaptTo(episode).State.Select(kv => kv.Key).ToArray();
        Assert.Equal(["layer0.weight", "layer0.bias", "head.weight", "head.bias"], state);
        var supportAsQuery = episode with { QueryX = episode.SupportX, QueryY = episode.SupportY };
        Assert.True(tuned.Evaluate(supportAsQuery).Loss < still.Evaluate(supportAsQuery).Loss);
    }

    [Fact]
    public void ItsKeysAreCheckedAndRefusedForOtherAlgorithms()
    {
        var path = Path.Combine(TestPaths.Configs, "omniglot", "mldg-5w1s-cpu.yaml");
        var config = ConfigLoader.Load(path, []);
        Assert.Equal((3, 1.0, OmniglotSplit.Lake), (config.Algorithm.Domains, config.Algorithm.MetaTestWeight, config.Data.Split));
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(path, ["algorithm.domains=1"]));
        Assert.Contains("algorithm.domains", e.Message);
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), ["algorithm.meta_test_weight=2"]));
        Assert.Contains("'algorithm.meta_test_weight' is not used by maml (only by mldg)", e.Message);
        Assert.Equal(0, AlgorithmRegistry.Get("mldg").TestInnerSteps(new AlgorithmConfig { Name = "mldg", InnerSteps = 3 }));
        Assert.Equal(3, AlgorithmRegistry.Get("maml").TestInnerSteps(new AlgorithmConfig { InnerSteps = 3 }));
    }
}
