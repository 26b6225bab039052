using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// execution: batched computes a meta-batch's tasks all at once (grouped convolutions, per-task
/// batch norm, batched head). Its outer gradient must be the per-task mode's: the sum over tasks
/// of each task's gradient, equal up to summation order.
/// </summary>
public class BatchedExecutionTests
{
    private const int Tasks = 3, Ways = 2, Shots = 2, Queries = 3;

    private static MetaBatch Images(long[] image, ulong seed)
    {
        using var g = new Generator(seed);
        Tensor Labels(int perClass) => Torch.From(Enumerable.Range(0, Tasks).SelectMany(_ => Enumerable.Range(0, Ways).SelectMany(c => Enumerable.Repeat((long)c, perClass))).ToArray(), Tasks, Ways * perClass);
        return new MetaBatch(Torch.Randn([Tasks, Ways * Shots, .. image], generator: g), Labels(Shots), Torch.Randn([Tasks, Ways * Queries, .. image], generator: g), Labels(Queries));
    }

    private static MetaBatch Regression(ulong seed)
    {
        using var g = new Generator(seed);
        return new MetaBatch(Torch.Randn([Tasks, 5, 1], generator: g), Torch.Randn([Tasks, 5, 1], generator: g), Torch.Randn([Tasks, 7, 1], generator: g), Torch.Randn([Tasks, 7, 1], generator: g));
    }

    private static IModel Model(string kind)
    {
        using var g = new Generator(4);
        return kind switch
        {
            "conv-stride" => new Conv4([1, 12, 12], filters: 4, outputs: Ways, maxPool: false, g, Device.Cpu),
            // 16 filters: blocks of 16 channels, which first-order passes run as one blocked stack (F.ConvStack).
            "conv-stride16" => new Conv4([1, 12, 12], filters: 16, outputs: Ways, maxPool: false, g, Device.Cpu),
            "conv-maxpool" => new Conv4([3, 16, 16], filters: 4, outputs: Ways, maxPool: true, g, Device.Cpu),
            "resnet12" => new ResNet12([3, 32, 32], filters: 4, outputs: Ways, g, Device.Cpu),
            _ => new Mlp(1, [8, 8], 1, g, Device.Cpu),
        };
    }

    private static AlgorithmConfig Settings(string algorithm, string[] keys) =>
        ConfigLoader.Parse($"algorithm:\n  name: {algorithm}\n" + string.Concat(keys.Select(k => $"  {k.Replace("=", ": ")}\n")), "t.yaml").Algorithm;

    private static MetaBatch Batch(string model) =>
        model == "mlp" ? Regression(9) : Images(model switch { "conv-stride" or "conv-stride16" => [1, 12, 12], "resnet12" => [3, 32, 32], _ => [3, 16, 16] }, 9);

    private static (Tensor?[] Gradients, double Loss, double Accuracy) Gradient(AlgorithmConfig a, string model, bool batched, long iteration, int workers = 1, int tasksPerRun = 0)
    {
        using var learner = AlgorithmRegistry.Create(a, Model(model), new Objective(model == "mlp"));
        (learner as IIterationAware)?.SetIteration(iteration);
        using var batch = Batch(model);
        var step = batched ? MetaIteration.BatchedGradient(learner, batch, Device.Cpu, workers, tasksPerRun) : MetaIteration.SumTaskGradients(learner, batch, Device.Cpu, workers: 1);
        return (step.Gradients.Select(t => t?.Detach().Clone()).ToArray(), step.Loss, step.Accuracy);
    }

    public static TheoryData<string, string, string[]> Cases() => new()
    {
        { "maml", "conv-stride", ["inner_steps=3"] },
        { "maml", "conv-maxpool", ["inner_steps=2"] },
        { "maml", "mlp", ["inner_steps=3", "inner_lr=0.01"] },
        { "fomaml", "conv-stride", ["inner_steps=3"] },
        { "fomaml", "conv-stride16", ["inner_steps=3"] },
        { "maml", "conv-stride16", ["inner_steps=2"] },
        { "anil", "conv-stride16", ["inner_steps=2"] },
        { "metasgd", "conv-stride16", ["inner_steps=2"] },
        { "maml++", "conv-stride16", ["inner_steps=2", "lslr=true", "first_order_iterations=10"] },
        { "fomaml", "mlp", ["inner_steps=2", "inner_lr=0.01"] },
        // ResNet-12's tiny test widths give gradients in the hundreds: a small step keeps the
        // adapted network from amplifying rounding differences chaotically. At 2 filters it
        // still did: OpenBLAS's Haswell kernels (forced on some AMD processors) moved one
        // gradient by 4% against its other kernels, with per task and batched agreeing to 1e-6
        // at 4 filters under both.
        { "maml", "resnet12", ["inner_steps=2", "inner_lr=0.001"] },
        { "fomaml", "resnet12", ["inner_steps=2", "inner_lr=0.001"] },
        { "anil", "conv-stride", ["inner_steps=3"] },
        { "anil", "conv-maxpool", ["inner_steps=2"] },
        { "metasgd", "conv-stride", ["inner_steps=2"] },
        { "metasgd", "mlp", ["inner_steps=2", "inner_lr=0.01"] },
        { "maml++", "conv-stride", ["inner_steps=3", "multi_step_loss=true", "lslr=true", "per_step_bn=true"] },
        { "maml++", "conv-maxpool", ["inner_steps=2", "lslr=true", "first_order_iterations=10"] },
        { "imaml", "conv-stride", ["inner_steps=3", "cg_steps=3"] },
        { "imaml", "mlp", ["inner_steps=3", "inner_lr=0.01", "cg_steps=3"] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void BatchedOuterGradientEqualsThePerTaskSum(string algorithm, string model, string[] keys)
    {
        using var scope = Torch.NewScope();
        var a = Settings(algorithm, keys);
        var perTask = Gradient(a, model, batched: false, iteration: 2);
        // One run of all three tasks, and two workers with runs of two and one task.
        foreach (var (workers, perRun) in new[] { (1, 0), (2, 2) })
        {
            var batched = Gradient(a, model, batched: true, iteration: 2, workers, perRun);
            // To 1e-5 of the gradient's size: some entries are zero in exact arithmetic (a
            // convolution's bias before batch norm) and only rounding noise of ~1e-7 in either mode.
            GradientAssert.AgreeToScale(perTask.Gradients, batched.Gradients, 1e-5, "per task", $"batched in runs of {perRun} on {workers} worker(s)");
            Assert.Equal(perTask.Loss, batched.Loss, 5);
            if (model != "mlp") Assert.Equal(perTask.Accuracy, batched.Accuracy, 10);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_meta_batch_adapted_at_once_predicts_each_task_as_alone(string algorithm, string model, string[] keys)
    {
        using var scope = Torch.NewScope();
        var objective = new Objective(model == "mlp");
        using var learner = (FastWeightLearner)AlgorithmRegistry.Create(Settings(algorithm, keys), Model(model), objective);
        using var batch = Batch(model);
        var tasks = TaskWorkers.Episodes(batch, Device.Cpu);
        var together = learner.PredictEach(new Episode(batch.SupportX, batch.SupportY, batch.QueryX, batch.QueryY));
        Assert.Equal(Tasks, together.Size(0));
        for (var t = 0; t < Tasks; t++)
        {
            var alone = learner.AdaptTo(tasks[t]).Logits;
            using var noGrad = Torch.NoGrad();
            GradientAssert.AgreeToScale([alone], [together[t]], 1e-5, "alone", "together");
            var (a, b) = (objective.Score(alone, tasks[t].QueryY), objective.Score(together[t], tasks[t].QueryY));
            Assert.Equal(a.Loss, b.Loss, 1e-5 * Math.Max(1, Math.Abs(a.Loss)));
            if (!objective.IsRegression) Assert.Equal(a.Accuracy, b.Accuracy);
        }
    }

    [Theory]
    [InlineData("maml", "conv-stride")]
    [InlineData("maml", "conv-stride16")]
    [InlineData("fomaml", "conv-stride16")]
    public void Batched_runs_give_the_same_bits_on_one_worker_or_two(string algorithm, string model)
    {
        using var scope = Torch.NewScope();
        var a = Settings(algorithm, ["inner_steps=2"]);
        var first = Gradient(a, model, batched: true, iteration: 2, workers: 2, tasksPerRun: 2);
        foreach (var workers in new[] { 2, 1, 2 })
        {
            var again = Gradient(a, model, batched: true, iteration: 2, workers, tasksPerRun: 2);
            for (var k = 0; k < first.Gradients.Length; k++)
                Assert.Equal(first.Gradients[k]!.ToArray<float>(), again.Gradients[k]!.ToArray<float>());
            Assert.Equal(first.Loss, again.Loss);
        }
    }

    [Fact]
    public void AnAlgorithmThatCannotBatchRefusesBatchedExecution()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("execution: batched\nalgorithm: {name: reptile}\n", "t.yaml"));
        Assert.Contains("t.yaml:1", e.Message);
        Assert.Contains("reptile", e.Message);
    }

    [Fact]
    public void Auto_batches_small_image_tasks_on_the_cpu_in_runs_of_up_to_eight_on_single_threaded_workers()
    {
        static ExecutionPlan Plan(string yaml) => Experiment.PlanFor(ConfigLoader.Parse("device: cpu\n" + yaml, "t.yaml"));
        const string omniglot = "data: {dataset: omniglot, train: {ways: 5, shots: 1, queries: 1}}\n";
        var plan = Plan(omniglot + "algorithm: {meta_batch_size: 32}\n");
        Assert.True(plan.Batched);
        Assert.Equal(8, plan.TasksPerRun);
        // A small meta-batch still gives two workers a run each.
        Assert.Equal(4, Plan(omniglot + "algorithm: {meta_batch_size: 8}\n").TasksPerRun);
        Assert.Equal(1, Plan(omniglot + "algorithm: {meta_batch_size: 1}\n").TasksPerRun);
        // 5-shot and 20-way episodes, or 5 queries per class, ran faster per task; so do the algorithms that cannot batch.
        Assert.False(Plan("data: {dataset: omniglot, train: {ways: 5, shots: 5, queries: 1}}\n").Batched);
        Assert.False(Plan("data: {dataset: omniglot, train: {ways: 20, shots: 1, queries: 1}, test: {ways: 20}}\n").Batched);
        Assert.False(Plan("data: {dataset: omniglot, train: {ways: 5, shots: 1, queries: 5}}\n").Batched);
        Assert.False(Plan(omniglot + "algorithm: {name: reptile}\n").Batched);
        Assert.False(Plan(omniglot + "execution: per_task\n").Batched);
        Assert.False(Plan("data: {dataset: sinusoid}\n").Batched);
        plan = Experiment.PlanFor(ConfigLoader.Parse("device: cpu\nexecution: batched\n", "t.yaml"));
        Assert.True(plan.Batched);
        // On the CPU each worker takes a run of the meta-batch's tasks, batched, on one thread.
        Assert.Equal(Environment.ProcessorCount, plan.Workers);
        Assert.Equal(1, plan.Threads);
    }
}
