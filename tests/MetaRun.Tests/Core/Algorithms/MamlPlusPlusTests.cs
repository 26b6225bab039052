using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>MAML++'s additions (per-layer per-step rates, per-step batch norm, multi-step loss, first-order iterations) against steps computed by hand.</summary>
public class MamlPlusPlusTests
{
    [Fact]
    public void LslrUsesItsOwnRatePerLayerAndStep()
    {
        using var scope = Torch.NewScope();
        var model = Tiny([4]);
        var task = TinyTask();
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
        var task = TinyTask();
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
        var task = TinyTask();
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
}
