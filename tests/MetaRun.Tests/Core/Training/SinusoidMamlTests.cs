using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Training;
using Serilog.Core;

namespace MetaRun.Tests.Training;


/// <summary>
/// The effect of Figure 2 of the MAML paper: after meta-training on sinusoids, one gradient
/// step on K = 10 points of a new task brings the query error far below its pre-update value
/// and below a network pretrained on all tasks by plain regression.
/// </summary>
public class SinusoidMamlTests
{
    private const int Iterations = 1500;

    private static RunConfig Config() => ConfigLoader.Load(Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"),
        [$"algorithm.iterations={Iterations}", "eval.interval=0", "threads=1"]);

    [Fact]
    public void OneStepAfterMetaTrainingBeatsPretrainingAndThePreUpdateModel()
    {
        var dir = TestPaths.NewTempDir("sinusoid");
        var config = Config();
        using var experiment = Experiment.Create(config, null);
        new Trainer(experiment, RunDirectory.At(dir), Logger.None).Run();

        var maml = (Maml)experiment.Learner;
        var (pre, post) = Errors(experiment, maml);

        // The baseline: the same network trained by ordinary regression on the same tasks' points.
        var baselineConfig = Config();
        baselineConfig.Seed = 2;
        using var baseline = Experiment.Create(baselineConfig, null);
        Pretrain(baseline, Iterations);
        var (_, baselinePost) = Errors(baseline, (Maml)baseline.Learner);

        Assert.True(post < 0.5 * pre, $"one step should at least halve the error: before {pre:F3}, after {post:F3}");
        Assert.True(post < 0.5 * baselinePost, $"MAML after one step {post:F3} should be well below the pretrained network after one step {baselinePost:F3}");
    }

    /// <summary>Mean query MSE on 100 test tasks before and after one inner step.</summary>
    private static (double Pre, double Post) Errors(Experiment e, Maml maml)
    {
        double pre = 0, post = 0;
        const int tasks = 100;
        using var scope = Torch.NewScope();
        using var batch = e.Family.Sample(Split.Test, 0, tasks, e.TestShape);
        foreach (var task in TaskWorkers.Episodes(batch, e.Device))
        {
            using var taskScope = Torch.NewScope();
            foreach (var (steps, add) in new[] { (0, (Action<double>)(v => pre += v)), (1, v => post += v) })
            {
                var fast = maml.Adapt(task.SupportX, task.SupportY, steps, createGraph: false);
                using var noGrad = Torch.NoGrad();
                add(F.MseLoss(e.Model.Forward(task.QueryX, fast), task.QueryY).Item());
            }
        }
        return (pre / tasks, post / tasks);
    }

    private static void Pretrain(Experiment e, int iterations)
    {
        var parameters = e.Model.Parameters;
        using var adam = new Adam(parameters, e.Config.Algorithm.OuterLr);
        var b = e.Config.Algorithm.MetaBatchSize;
        for (var it = 0; it < iterations; it++)
        {
            using var scope = Torch.NewScope();
            using var batch = e.Family.Sample(Split.Train, (long)it * b, b, e.TrainShape);
            var x = Torch.Cat([batch.SupportX, batch.QueryX], 1);
            var y = Torch.Cat([batch.SupportY, batch.QueryY], 1);
            var loss = F.MseLoss(e.Model.Forward(x, parameters), y);
            adam.Step(Torch.Grad([loss], parameters));
        }
    }
}
