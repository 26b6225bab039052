using System.Globalization;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Models;
using MetaRun.Training;
using MetaRun.Tests.Training;
using Serilog.Core;

namespace MetaRun.Tests.Algorithms;

/// <summary>Alpha MAML's two hypergradient rules by hand, its config checks, and its trajectories through a crash and resume.</summary>
public class AlphaMamlTests
{
    private static float[] Values(Tensor t) => t.Detach().Contiguous().ToArray<float>();

    private static double Dot(IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b) =>
        a.Zip(b, (u, v) => (u.To(ScalarType.Float64) * v.To(ScalarType.Float64)).Sum().Item()).Sum();

    [Fact]
    public void InnerRateFollowsItsHypergradientAndOuterRateTheAgreementOfConsecutiveMetaGradients()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(3);
        var model = new Mlp(3, [4], 2, g, Device.Cpu);
        using var learner = new AlphaMaml(model, new Objective(false), innerLr: 0.2, innerSteps: 1, testInnerSteps: 1, outerLr: 0.05, innerHyperLr: 0.01, outerHyperLr: 0.5);
        var theta = model.Parameters;
        var n = theta.Count;
        Episode Task(ulong seed)
        {
            using var t = new Generator(seed);
            return new Episode(Torch.Randn([4, 3], generator: t), Torch.From(new long[] { 0, 1, 0, 1 }, 4), Torch.Randn([6, 3], generator: t), Torch.From(new long[] { 1, 0, 1, 0, 1, 0 }, 6));
        }

        // ∂L_query(θ − α g_s)/∂α = −∇θ'L_query(θ') · g_s for one inner step.
        var task = Task(11);
        var gs = Torch.Grad([F.CrossEntropy(model.Forward(task.SupportX, theta), task.SupportY)], theta).Select(t => t!.Detach()).ToArray();
        var fast = theta.Select((w, i) => (w - 0.2 * gs[i]).Detach().RequiresGrad_()).ToArray();
        var gq = Torch.Grad([F.CrossEntropy(model.Forward(task.QueryX, fast), task.QueryY)], fast).Select(t => t!).ToArray();
        var r = learner.TaskGradient(task, 1.0);
        Assert.Equal(-Dot(gq, gs), Values(r.Gradients[n]!)[0], 4);
        Assert.Null(r.Gradients[n + 1]);   // β and the stored gradient are not differentiated

        // First step: no previous meta-gradient, so β stays; α takes its hypergradient step.
        var gradients = r.Gradients.ToArray();
        var metaGradient = gradients.Take(n).Select(t => t!.Detach().Clone()).ToArray();
        var lr = learner.BeforeOuterStep(gradients, learningRate: 123);
        Assert.Equal(0.05, lr, 6);
        Assert.Equal(0.2 - 0.01 * -Dot(gq, gs), learner.Traced()[0], 5);
        Assert.All(gradients.Skip(n), Assert.Null);   // the optimizer leaves the rates alone
        Assert.All(gradients.Take(n), Assert.NotNull);

        // Second step: β ← β + μ_β G_t · G_{t−1}.
        var second = learner.TaskGradient(Task(12), 1.0).Gradients.ToArray();
        var agreement = Dot(second.Take(n).Select(t => t!).ToArray(), metaGradient);
        lr = learner.BeforeOuterStep(second, 0.05);
        Assert.Equal(0.05 + 0.5 * agreement, lr, 5);
        Assert.Equal(["inner_lr", "outer_lr"], learner.TracedNames);
        Assert.Equal(lr, learner.Traced()[1], 6);
    }

    [Theory]
    [InlineData("algorithm.outer_optimizer=adam", "algorithm.outer_optimizer")]
    [InlineData("algorithm.outer_lr_schedule=cosine", "algorithm.outer_lr_schedule")]
    public void TheOuterStepMustBePlainConstantRateSgd(string set, string named)
    {
        string[] sets = ["algorithm.name=alpha-maml", "algorithm.outer_optimizer=sgd", set];
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"), sets));
        Assert.Contains(named, e.Message);
    }

    private static RunConfig Config() => ConfigLoader.Load(Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"),
        ["algorithm.iterations=30", "algorithm.name=alpha-maml", "algorithm.outer_optimizer=sgd", "algorithm.outer_lr=0.01", "algorithm.inner_hyper_lr=0.0001",
         "algorithm.outer_hyper_lr=0.00001", "algorithm.meta_batch_size=5", "eval.interval=0", "checkpoint.interval=10", "threads=1", "workers=1"]);

    /// <summary>metrics.csv without its wall-clock column.</summary>
    private static string[] Rates(string run) =>
        [.. File.ReadAllLines(Path.Combine(run, "metrics.csv")).Select(l => string.Join(',', l.Split(',').Where((_, i) => i != 6)))];

    [Fact]
    public void RatesAreLoggedEveryIterationAndContinueBitForBitAfterAResume()
    {
        var straight = TestPaths.NewTempDir("alpha-straight");
        using (var e = Experiment.Create(Config(), null)) new Trainer(e, RunDirectory.At(straight), Logger.None).Run();
        var crashed = TestPaths.NewTempDir("alpha-crashed");
        using (var e = Experiment.Create(Config(), null))
            Assert.Throws<InvalidOperationException>(() => new Trainer(e, RunDirectory.At(crashed), Logger.None, new CrashAfter(15)).Run());
        using (var e = Experiment.Create(Config(), null))
        using (var last = Checkpoint.Load(Path.Combine(crashed, "checkpoints", "last.safetensors")))
            new Trainer(e, RunDirectory.At(crashed), Logger.None).Run(last);

        var rows = Rates(straight);
        Assert.Equal("iteration,train_loss,train_accuracy,val_loss,val_accuracy,val_ci95,inner_lr,outer_lr", rows[0]);
        Assert.Equal(31, rows.Length);
        Assert.Equal(rows, Rates(crashed));
        // The rates move: neither trajectory is flat at its starting value.
        var inner = rows.Skip(1).Select(r => double.Parse(r.Split(',')[6], CultureInfo.InvariantCulture)).ToArray();
        var outer = rows.Skip(1).Select(r => double.Parse(r.Split(',')[7], CultureInfo.InvariantCulture)).ToArray();
        Assert.NotEqual(inner[0], inner[^1]);
        Assert.NotEqual(0.01, outer[^1]);
    }
}
