using LibTorch;
using MetaRun.Config;
using MetaRun.Training;
using MetaRun.Tests.Training;
using Serilog.Core;

namespace MetaRun.Tests.Training;


/// <summary>The outer learning-rate schedule is a pure function of the iteration: a crash and resume changes nothing.</summary>
public class ScheduleResumeTests
{
    private static RunConfig Config() => ConfigLoader.Load(Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"),
        ["algorithm.iterations=30", "algorithm.name=reptile", "algorithm.inner_steps=3", "algorithm.outer_optimizer=sgd", "algorithm.outer_lr=1.0",
         "algorithm.outer_lr_schedule=linear", "algorithm.meta_batch_size=5", "eval.interval=0", "checkpoint.interval=10", "threads=1", "workers=1"]);

    private static byte[] Weights(string runDir)
    {
        using var c = Checkpoint.Load(Path.Combine(runDir, "checkpoints", "last.safetensors"));
        return c.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToBytes()).ToArray();
    }

    [Fact]
    public void LinearScheduleAnnealsToZeroAndResumeIsBitExact()
    {
        var a = Config().Algorithm;
        Assert.Equal(1.0, MetaIteration.ScheduledLr(a, 1));
        Assert.Equal(0.5, MetaIteration.ScheduledLr(a, 16), 12);
        Assert.Equal(1.0 / 30, MetaIteration.ScheduledLr(a, 30), 12);
        a.OuterLrSchedule = LrSchedule.Cosine;
        Assert.Equal(0.5, MetaIteration.ScheduledLr(a, 16), 12);

        var straight = TestPaths.NewTempDir("sched-straight");
        using (var e = Experiment.Create(Config(), null)) new Trainer(e, RunDirectory.At(straight), Logger.None).Run();

        var crashed = TestPaths.NewTempDir("sched-crashed");
        using (var e = Experiment.Create(Config(), null))
            Assert.Throws<InvalidOperationException>(() => new Trainer(e, RunDirectory.At(crashed), Logger.None, new CrashAfter(15)).Run());
        using (var e = Experiment.Create(Config(), null))
        using (var last = Checkpoint.Load(Path.Combine(crashed, "checkpoints", "last.safetensors")))
        {
            Assert.Equal(10, last.Iteration);
            new Trainer(e, RunDirectory.At(crashed), Logger.None).Run(last);
        }
        Assert.Equal(Weights(straight), Weights(crashed));
    }
}
