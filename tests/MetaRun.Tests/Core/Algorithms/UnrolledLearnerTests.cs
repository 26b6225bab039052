using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// algorithm.checkpoint_inner_steps recomputes the inner steps in the backward pass instead of
/// keeping their graphs. It changes memory, not the meta-gradient: for every learner that
/// differentiates through its inner loop, first and second order, per task and batched, the
/// outer gradient must be the plain path's up to summation order.
/// </summary>
public class UnrolledLearnerTests
{
    private const int Tasks = 3, Ways = 2, Shots = 2, Queries = 3;

    private static MetaBatch Images(ulong seed)
    {
        using var g = new Generator(seed);
        Tensor Labels(int perClass) => Torch.From(Enumerable.Range(0, Tasks).SelectMany(_ => Enumerable.Range(0, Ways).SelectMany(c => Enumerable.Repeat((long)c, perClass))).ToArray(), Tasks, Ways * perClass);
        // Pixels in [0.2, 0.8], so ADML's FGSM examples stay inside the pixel range on both sides.
        Tensor Pixels(int n) => Torch.Rand([Tasks, n, 1, 12, 12], generator: g) * 0.6 + 0.2;
        return new MetaBatch(Pixels(Ways * Shots), Labels(Shots), Pixels(Ways * Queries), Labels(Queries));
    }

    private static IMetaLearner Learner(string algorithm, int steps, string[] keys, bool checkpoint)
    {
        using var g = new Generator(4);
        var model = new Conv4([1, 12, 12], filters: 4, outputs: Ways, maxPool: false, g, Device.Cpu);
        var yaml = $"data:\n  dataset: omniglot\nalgorithm:\n  name: {algorithm}\n  inner_steps: {steps}\n  inner_lr: 0.1\n  checkpoint_inner_steps: {(checkpoint ? "true" : "false")}\n"
                   + string.Concat(keys.Select(k => $"  {k.Replace("=", ": ")}\n"));
        var a = ConfigLoader.Parse(yaml, "t.yaml").Algorithm;
        var objective = new Objective(regression: false);
        // ADML's attack needs the family's pixel range (raw pixels in [0, 1] here).
        return algorithm == "adml"
            ? new Adml(model, objective, a.InnerLr, a.InnerSteps, a.EffectiveTestInnerSteps, a.Epsilon, new PixelSpace([1f], [0f])) { CheckpointInnerSteps = a.CheckpointInnerSteps }
            : AlgorithmRegistry.Create(a, model, objective);
    }

    private static (Tensor?[] Gradients, double Loss, double Accuracy) Gradient(string algorithm, int steps, string[] keys, bool checkpoint, bool batched)
    {
        using var learner = Learner(algorithm, steps, keys, checkpoint);
        Assert.Equal(checkpoint, ((UnrolledLearner)learner).CheckpointInnerSteps);
        (learner as IIterationAware)?.SetIteration(2);
        using var batch = Images(9);
        var step = batched ? MetaIteration.BatchedGradient(learner, batch, Device.Cpu, workers: 1) : MetaIteration.SumTaskGradients(learner, batch, Device.Cpu, workers: 1);
        return (step.Gradients.Select(t => t?.Detach().Clone()).ToArray(), step.Loss, step.Accuracy);
    }

    public static TheoryData<string, int, string, string[]> Cases()
    {
        var data = new TheoryData<string, int, string, string[]>();
        // (name, extra keys, whether it can run batched)
        (string Name, string[] Keys, bool Batched)[] learners =
        [
            ("maml", [], true),
            ("fomaml", [], true),
            ("maml++", ["multi_step_loss=true", "lslr=true", "per_step_bn=true"], true),
            // First order for the first 10 iterations: iteration 2 takes MAML++'s first-order path.
            ("maml++", ["lslr=true", "first_order_iterations=10"], true),
            ("metasgd", [], true),
            ("anil", [], true),
            ("alfa", [], false),
            ("adml", ["epsilon=0.05"], false),
            ("alpha-maml", ["outer_optimizer=sgd"], false),
        ];
        foreach (var (name, keys, canBatch) in learners)
            for (var steps = 1; steps <= 3; steps++)
            {
                data.Add(name, steps, "per_task", keys);
                if (canBatch) data.Add(name, steps, "batched", keys);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Checkpointed_inner_steps_give_the_plain_outer_gradient(string algorithm, int steps, string execution, string[] keys)
    {
        using var scope = Torch.NewScope();
        var batched = execution == "batched";
        var plain = Gradient(algorithm, steps, keys, checkpoint: false, batched);
        var checkpointed = Gradient(algorithm, steps, keys, checkpoint: true, batched);
        GradientAssert.AgreeToScale(plain.Gradients, checkpointed.Gradients, 1e-6, "plain", "checkpointed");
        Assert.Equal(plain.Loss, checkpointed.Loss, 6);
        Assert.Equal(plain.Accuracy, checkpointed.Accuracy, 10);
    }

    [Theory]
    [InlineData("imaml")]
    [InlineData("reptile")]
    [InlineData("protonet")]
    public void A_learner_without_an_unrolled_inner_loop_refuses_checkpointing(string algorithm)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse($"data:\n  dataset: omniglot\nalgorithm:\n  name: {algorithm}\n  checkpoint_inner_steps: true\n", "t.yaml"));
        Assert.Contains("checkpoint_inner_steps", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Checkpointing_leaves_the_config_hash_unchanged_so_a_run_may_turn_it_on_when_resumed()
    {
        var plain = ConfigLoader.Parse("algorithm:\n  name: maml\n", "t.yaml");
        var explicitDefault = ConfigLoader.Parse("algorithm:\n  name: maml\n  checkpoint_inner_steps: false\n", "t.yaml");
        var on = ConfigLoader.Parse("algorithm:\n  name: maml\n  checkpoint_inner_steps: true\n", "t.yaml");
        Assert.Equal(ConfigLoader.Hash(plain), ConfigLoader.Hash(explicitDefault));
        Assert.Equal(ConfigLoader.Hash(plain), ConfigLoader.Hash(on));
    }
}
