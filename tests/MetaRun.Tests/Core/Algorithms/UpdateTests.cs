using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;

namespace MetaRun.Tests.Algorithms;


/// <summary>Each method's update against a step computed by hand on a tiny model.</summary>
public class UpdateTests
{
    private static float[] Values(Tensor t) => t.Detach().Contiguous().ToArray<float>();

    private static void Close(Tensor expected, Tensor? actual, double tol = 1e-5)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.Shape, actual!.Shape);
        var (e, a) = (Values(expected), Values(actual));
        for (var i = 0; i < e.Length; i++) Assert.True(Math.Abs(e[i] - a[i]) <= tol * (1 + Math.Abs(e[i])), $"element {i}: expected {e[i]}, got {a[i]}");
    }

    /// <summary>A 3-input linear classifier (an MLP with no hidden layer: all head) or with one hidden layer.</summary>
    private static Mlp Tiny(int[] hidden, int outputs = 2, ulong seed = 3)
    {
        using var g = new Generator(seed);
        return new Mlp(3, hidden, outputs, g, Device.Cpu);
    }

    private static Episode Task(long seed = 11)
    {
        using var g = new Generator((ulong)seed);
        var sx = Torch.Randn([4, 3], generator: g);
        var qx = Torch.Randn([6, 3], generator: g);
        return new Episode(sx, Torch.From(new long[] { 0, 1, 0, 1 }, 4), qx, Torch.From(new long[] { 1, 0, 1, 0, 1, 0 }, 6));
    }

    private static Tensor[] Grad(Tensor loss, IReadOnlyList<Tensor> wrt, bool createGraph = false) =>
        Torch.Grad([loss], wrt, createGraph: createGraph).Select(g => g!).ToArray();

    [Fact]
    public void ReptileMovesThetaTowardTheTaskTrainedWeightsByEpsilon()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([]);
        var theta = model.Parameters.Select(p => p.Detach().Clone()).ToArray();
        var task = Task();
        const double lr = 0.3, eps = 0.25;
        using var reptile = new Reptile(model, new Objective(false), lr, innerSteps: 3, testInnerSteps: 3, adam: false, innerBatch: 0);

        // By hand: 3 SGD steps on support and query pooled.
        var x = Torch.Cat([task.SupportX, task.QueryX]);
        var y = Torch.Cat([task.SupportY, task.QueryY]);
        var phi = theta.Select(t => t.Clone().RequiresGrad_()).ToArray();
        for (var s = 0; s < 3; s++)
        {
            var g = Grad(F.CrossEntropy(F.Linear(x, phi[0], phi[1]), y), phi);
            phi = phi.Select((p, i) => (p - lr * g[i]).Detach().RequiresGrad_()).ToArray();
        }

        var r = reptile.TaskGradient(task, weight: 1.0);
        for (var i = 0; i < 2; i++) Close(theta[i] - phi[i], r.Gradients[i]);

        // The outer SGD step with learning rate ε is θ + ε (φ − θ).
        using var sgd = new Sgd(model.Parameters, eps);
        sgd.Step(r.Gradients);
        for (var i = 0; i < 2; i++) Close(theta[i] + eps * (phi[i] - theta[i]), model.Parameters[i]);
    }

    [Fact]
    public void MetaSgdGradientWithRespectToAlphaIsMinusInnerGradientTimesOuterGradient()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([]);
        var task = Task();
        using var metaSgd = new MetaSgd(model, new Objective(false), innerLr: 0.1, innerSteps: 1, testInnerSteps: 1);
        using (Torch.NoGrad())
        {
            metaSgd.Alpha[0].CopyFrom(Torch.Full([2, 3], 0.2));   // distinct rates per tensor
            metaSgd.Alpha[1].CopyFrom(Torch.From(new float[] { 0.05f, 0.5f }, 2));
        }
        Assert.Equal(["head.weight", "head.bias", "alpha.head.weight", "alpha.head.bias"], metaSgd.OuterParameterNames);

        // θ' = θ − α ∘ g_s;  ∂L_q(θ')/∂α = −g_s ∘ ∇L_q(θ').
        var theta = model.Parameters;
        var gs = Grad(F.CrossEntropy(F.Linear(task.SupportX, theta[0], theta[1]), task.SupportY), theta);
        var fast = theta.Select((t, i) => (t - metaSgd.Alpha[i].Detach() * gs[i]).Detach().RequiresGrad_()).ToArray();
        var gq = Grad(F.CrossEntropy(F.Linear(task.QueryX, fast[0], fast[1]), task.QueryY), fast);

        var r = metaSgd.TaskGradient(task, weight: 0.5);
        for (var i = 0; i < 2; i++) Close(-0.5 * gs[i] * gq[i], r.Gradients[2 + i]);
    }

    [Fact]
    public void AnilAdaptsOnlyTheHeadAndStillLearnsTheBodyOuter()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([4]);
        var task = Task();
        using var anil = new Anil(model, new Objective(false), innerLr: 0.4, innerSteps: 1, testInnerSteps: 1, firstOrder: false);
        var fast = anil.Adapt(task.SupportX, task.SupportY, steps: 1, createGraph: true);

        var h = model.IndicesOf(ParameterRole.HeadWeight)[0];
        Assert.Equal(2, h);
        Assert.Equal([ParameterRole.Body, ParameterRole.Body, ParameterRole.HeadWeight, ParameterRole.HeadBias], model.Roles);
        for (var i = 0; i < h; i++) Assert.Same(model.Parameters[i], fast[i]);
        var w = model.Parameters;
        var g = Grad(F.CrossEntropy(model.Forward(task.SupportX, w), task.SupportY), w.Skip(h).ToArray());
        for (var i = 0; i < 2; i++) Close(w[h + i] - 0.4 * g[i], fast[h + i]);

        var r = anil.TaskGradient(task, 1.0);
        Assert.All(r.Gradients, gr => Assert.NotNull(gr));
        Assert.True(Values(r.Gradients[0]!.Abs().Sum())[0] > 0, "the outer loop must reach the body");
    }

    [Fact]
    public void ProtoNetLogitsAreNegativeSquaredDistancesToClassMeans()
    {
        using var scope = Torch.NewScope();
        var support = Torch.From(new float[] { 0, 0, 2, 0, 0, 4 }, 3, 2);
        var prototypes = ProtoNet.Prototypes(support, Torch.From(new long[] { 0, 0, 1 }, 3), ways: 2);
        Close(Torch.From(new float[] { 1, 0, 0, 4 }, 2, 2), prototypes);
        var logits = ProtoNet.Logits(Torch.From(new float[] { 1, 1, 0, 3 }, 2, 2), prototypes);
        // (1,1): −(0² + 1²) = −1 to (1,0); −(1² + 3²) = −10 to (0,4). (0,3): −(1 + 9) = −10; −(0 + 1) = −1.
        Close(Torch.From(new float[] { -1, -10, -10, -1 }, 2, 2), logits);
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

    [Fact]
    public void RelationNetGradientMatchesFiniteDifferencesOfItsMseToOneHot()
    {
        using var scope = Torch.NewScope();
        var task = Task();
        using var net = new RelationNet(Tiny([4], outputs: 1), new Objective(false), seed: 7);
        Assert.Equal(["layer0.weight", "layer0.bias", "relation.fc1.weight", "relation.fc1.bias", "relation.fc2.weight", "relation.fc2.bias", "relation.fc3.weight", "relation.fc3.bias"], net.OuterParameterNames);
        // h = 2e-3: small enough not to step over a ReLU kink, large for float32 losses.
        FiniteDifferences.Check(net.OuterParameters, net.OuterParameterNames, net.TaskGradient(task, 1.0).Gradients,
            () => net.Evaluate(task).Loss, h: 2e-3, absTol: 2e-3, relTol: 0.02);
        // The loss is the mean squared error of the relation scores (in [0, 1]) to the one-hot labels.
        Assert.InRange(net.Evaluate(task).Loss, 0.0, 1.0);
    }

    [Fact]
    public void AlfaStartsAsMamlAndThenStepsWithItsGeneratedRateAndDecay()
    {
        using var scope = Torch.NewScope();
        var task = Task();
        var model = Tiny([4]);
        using var alfa = new Alfa(model, new Objective(false), innerLr: 0.3, innerSteps: 1, testInnerSteps: 1, seed: 5);
        var theta = model.Parameters.Select(p => p.Detach().Clone()).ToArray();
        var g = Grad(F.CrossEntropy(model.Forward(task.SupportX, model.Parameters), task.SupportY), model.Parameters);
        // The generator's last layer starts at zero: α = α⁰ = inner_lr and β = β⁰ = 1, MAML's step.
        var fast = alfa.Adapt(task.SupportX, task.SupportY, 1, createGraph: false);
        for (var p = 0; p < 4; p++) Close(theta[p] - 0.3 * g[p], fast[p]);

        // With the generator's output bias set, (1 + a, 1 + b) scale α⁰ and β⁰: θ ← β θ − α g per layer.
        var names = alfa.OuterParameterNames.ToList();
        using (Torch.NoGrad())
        {
            alfa.OuterParameters[names.IndexOf("alfa.g.fc2.bias")].CopyFrom(Torch.From(new float[] { 1, 0, -0.5f, 0, -0.1f, 0, 0, 0.2f }, 8));
            alfa.OuterParameters[names.IndexOf("alfa.alpha0")].CopyFrom(Torch.From(new float[] { 0.3f, 0.2f, 0.1f, 0.4f }, 1, 4));
        }
        float[] alpha = [0.6f, 0.2f, 0.05f, 0.4f], beta = [0.9f, 1f, 1f, 1.2f];
        fast = alfa.Adapt(task.SupportX, task.SupportY, 1, createGraph: false);
        for (var p = 0; p < 4; p++) Close(beta[p] * theta[p] - alpha[p] * g[p], fast[p]);
        var r = alfa.TaskGradient(task, 1.0);
        Assert.NotNull(r.Gradients[names.IndexOf("alfa.g.fc2.weight")]);
        Assert.NotNull(r.Gradients[names.IndexOf("alfa.alpha0")]);
    }

    [Fact]
    public void ProtoNetTrainsAndSavesOnlyTheBody()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([4], outputs: 1);
        using var proto = new ProtoNet(model, new Objective(false));
        Assert.Equal(["layer0.weight", "layer0.bias"], proto.OuterParameterNames);
        var r = proto.TaskGradient(Task(), 1.0);
        Assert.Equal(2, r.Gradients.Length);
        Assert.All(r.Gradients, g => Assert.NotNull(g));
    }

    [Fact]
    public void LslrUsesItsOwnRatePerLayerAndStep()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([4]);
        var task = Task();
        using var mpp = new MamlPlusPlus(model, new Objective(false), innerLr: 0.1, innerSteps: 2, testInnerSteps: 2, firstOrder: false,
            multiStepLoss: false, multiStepIterations: 1, lslr: true, perStepBn: false, firstOrderIterations: 0);
        Assert.Equal(8, mpp.OuterParameters.Count);
        Assert.Equal("lslr.layer0.weight", mpp.OuterParameterNames[4]);
        var rates = new[] { new[] { 0.1f, 0.2f }, [0.3f, 0.4f], [0.5f, 0.6f], [0.7f, 0.8f] };
        using (Torch.NoGrad())
            for (var p = 0; p < 4; p++) mpp.OuterParameters[4 + p].CopyFrom(Torch.From(rates[p], 2));

        IReadOnlyList<Tensor> w = model.Parameters.Select(t => t.Detach().Clone().RequiresGrad_()).ToArray();
        for (var s = 0; s < 2; s++)
        {
            var g = Grad(F.CrossEntropy(model.Forward(task.SupportX, w), task.SupportY), w);
            w = w.Select((t, p) => (t - rates[p][s] * g[p]).Detach().RequiresGrad_()).ToArray();
        }
        var fast = mpp.Adapt(task.SupportX, task.SupportY, 2, createGraph: false);
        for (var p = 0; p < 4; p++) Close(w[p], fast[p]);
        var r = mpp.TaskGradient(task, 1.0);
        Assert.All(r.Gradients.Skip(4), g => Assert.NotNull(g));
    }

    [Fact]
    public void PerStepBatchNormHasItsOwnWeightsForEveryStep()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(5);
        var model = new Conv4([1, 8, 8], filters: 4, outputs: 2, maxPool: false, g, Device.Cpu);
        using var mpp = new MamlPlusPlus(model, new Objective(false), innerLr: 0.1, innerSteps: 2, testInnerSteps: 2, firstOrder: false,
            multiStepLoss: false, multiStepIterations: 1, lslr: false, perStepBn: true, firstOrderIterations: 0);
        // The model's own batch-norm weights are replaced by per-step copies: 4 convs + head, then 2 steps × 4 blocks × (weight, bias).
        Assert.DoesNotContain("block0.bn.weight", mpp.OuterParameterNames);
        Assert.Equal(10 + 2 * 8, mpp.OuterParameters.Count);
        Assert.Contains("bn_step1.block3.bn.bias", mpp.OuterParameterNames);

        using var dg = new Generator(6);
        var task = new Episode(Torch.Randn([4, 1, 8, 8], generator: dg), Torch.From(new long[] { 0, 1, 0, 1 }, 4),
            Torch.Randn([4, 1, 8, 8], generator: dg), Torch.From(new long[] { 1, 0, 1, 0 }, 4));
        var r = mpp.TaskGradient(task, 1.0);
        var names = mpp.OuterParameterNames;
        // Step 0's weights act in the first support pass, step 1's in the second and in the query pass: both learn.
        Assert.NotNull(r.Gradients[names.ToList().IndexOf("bn_step0.block0.bn.weight")]);
        Assert.NotNull(r.Gradients[names.ToList().IndexOf("bn_step1.block0.bn.weight")]);

        var before = mpp.Evaluate(task).Loss;
        using (Torch.NoGrad()) mpp.OuterParameters[names.ToList().IndexOf("bn_step1.block3.bn.weight")].Mul_(3);
        Assert.NotEqual(before, mpp.Evaluate(task).Loss);
    }

    [Fact]
    public void MultiStepLossWeightsStartUniformAndAnnealToTheLastStep()
    {
        static void Equal(double[] expected, double[] actual)
        {
            Assert.Equal(expected.Length, actual.Length);
            for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 10);
        }
        Equal([0.2, 0.2, 0.2, 0.2, 0.2], MamlPlusPlus.StepLossWeights(5, iteration: 1, annealIterations: 100));
        // Halfway: non-final 0.2 − 50 · 0.2/100 = 0.1; final 0.2 + 50 · 4 · 0.002 = 0.6.
        Equal([0.1, 0.1, 0.1, 0.1, 0.6], MamlPlusPlus.StepLossWeights(5, iteration: 51, annealIterations: 100));
        // The end: non-final floor 0.03/5; final 1 − 4 · 0.006.
        Equal([0.006, 0.006, 0.006, 0.006, 0.976], MamlPlusPlus.StepLossWeights(5, iteration: 1000, annealIterations: 100));
    }

    [Fact]
    public void MultiStepLossGradientIsTheWeightedSumOfPerStepQueryLosses()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([]);
        var task = Task();
        using var mpp = new MamlPlusPlus(model, new Objective(false), innerLr: 0.3, innerSteps: 2, testInnerSteps: 2, firstOrder: false,
            multiStepLoss: true, multiStepIterations: 10, lslr: false, perStepBn: false, firstOrderIterations: 0);
        mpp.SetIteration(6);
        var v = MamlPlusPlus.StepLossWeights(2, 6, 10);

        IReadOnlyList<Tensor> theta = model.Parameters;
        var w = theta;
        Tensor total = Torch.Scalar(0);
        for (var s = 0; s < 2; s++)
        {
            var g = Grad(F.CrossEntropy(model.Forward(task.SupportX, w), task.SupportY), w, createGraph: true);
            w = w.Select((t, p) => t - 0.3 * g[p]).ToArray();
            total = total + v[s] * F.CrossEntropy(model.Forward(task.QueryX, w), task.QueryY);
        }
        var expected = Grad(total, theta);
        var r = mpp.TaskGradient(task, 1.0);
        for (var p = 0; p < 2; p++) Close(expected[p], r.Gradients[p]);
    }

    [Fact]
    public void FirstOrderIterationsSwitchToSecondOrderAfterN()
    {
        using var scope = Torch.NewScope();
        var task = Task();
        Tensor?[] Run(bool firstOrderOnly, long it)
        {
            var a = new AlgorithmConfig { InnerLr = 0.3, InnerSteps = 1, FirstOrderIterations = firstOrderOnly ? 5 : 0, Lslr = !firstOrderOnly };
            using var mpp = (MamlPlusPlus)AlgorithmRegistry.Create(a, Tiny([4]), new Objective(false));
            mpp.SetIteration(it);
            return mpp.TaskGradient(task, 1.0).Gradients;
        }
        var first = Run(true, 5);   // still first order at iteration 5
        var second = Run(true, 6);  // second order from iteration 6
        var reference = Run(false, 1);
        Close(reference[0]!, second[0]);
        Assert.NotEqual(Values(reference[0]!), Values(first[0]!));
    }

    [Fact]
    public void BaselineNeedsAFamilyWithClassBatches()
    {
        using var scope = Torch.NewScope();
        using var family = new SinusoidTaskFamily(1);
        var e = Assert.Throws<ConfigException>(() => AlgorithmRegistry.Create(new AlgorithmConfig { Name = "baseline" }, Tiny([4]), new Objective(false), family));
        Assert.Contains("algorithm.name", e.Message);
    }

    [Fact]
    public void ConfigAllowsMoreTrainingWaysThanTestWaysOnlyWithoutAHead()
    {
        const string yaml = "data:\n  dataset: omniglot\n  train: {ways: 20}\n  test: {ways: 5}\nalgorithm:\n  name: {0}\n";
        Assert.Equal(20, ConfigLoader.Parse(yaml.Replace("{0}", "protonet"), "t.yaml").Data.Train.Ways);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml.Replace("{0}", "anil"), "t.yaml"));
        Assert.Contains("data.test.ways", e.Message);
    }
}
