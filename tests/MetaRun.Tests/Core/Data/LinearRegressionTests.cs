using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Training;

namespace MetaRun.Tests.Data;

/// <summary>
/// The linear-regression task family's worked example: one inner step maps a line's slope w to
/// w + c(a − w) with c independent of the task's slope a, so the query loss after it is
/// minimized on average by w = E[a], and MAML's learned initialization approaches the mean slope.
/// </summary>
public class LinearRegressionTests
{
    [Fact]
    public void OneStepMamlLearnsTheMeanSlopeAsItsInitialization()
    {
        var config = ConfigLoader.Parse("""
            seed: 3
            data: {dataset: linear, train: {shots: 10, queries: 10}, test: {shots: 10, queries: 10}}
            model: {name: mlp, hidden: []}
            algorithm: {name: maml, inner_lr: 0.1, inner_steps: 1, outer_lr: 0.02, meta_batch_size: 25, iterations: 400}
            workers: 1
            """, "linear.yaml");
        using var experiment = Experiment.Create(config, null);
        var slope = () => experiment.Model.Parameters[0].Item();
        Assert.NotInRange(slope(), 1.3, 1.7);
        using var optimizer = MetaIteration.CreateOptimizer(config.Algorithm, experiment.Learner.OuterParameters);
        for (var it = 1; it <= config.Algorithm.Iterations; it++)
        {
            using var scope = Torch.NewScope();
            using var batch = experiment.TrainingBatch(it - 1);
            MetaIteration.Run(experiment.Learner, config.Algorithm, optimizer, batch, it, experiment.Plan);
        }
        var mean = (LinearTaskFamily.SlopeMin + LinearTaskFamily.SlopeMax) / 2;
        Assert.InRange(slope(), mean - 0.1, mean + 0.1);
        Assert.InRange(experiment.Model.Parameters[1].Item(), -0.1, 0.1);
    }

    [Fact]
    public void EpisodesAreNoisyLinesWithTheirOwnSlope()
    {
        using var family = new LinearTaskFamily(1);
        using var batch = family.Sample(Split.Train, 0, 2, new EpisodeShape(1, 50, 0));
        var (x, y) = (batch.SupportX.ToArray<float>(), batch.SupportY.ToArray<float>());
        double Slope(int t) => Enumerable.Range(t * 50, 50).Sum(i => x[i] * y[i]) / Enumerable.Range(t * 50, 50).Sum(i => x[i] * x[i]);
        Assert.All(new[] { Slope(0), Slope(1) }, a => Assert.InRange(a, LinearTaskFamily.SlopeMin - 0.1, LinearTaskFamily.SlopeMax + 0.1));
        Assert.NotEqual(Slope(0), Slope(1), 2);
        Assert.All(x, v => Assert.InRange(v, -1f, 1f));
    }
}
