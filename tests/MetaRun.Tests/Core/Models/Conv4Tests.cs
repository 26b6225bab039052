using LibTorch;
using MetaRun.Models;
using MetaRun.Tests.Algorithms;

namespace MetaRun.Tests.Models;

/// <summary>
/// Conv4 on Omniglot-shaped meta-batches runs its blocks as one blocked convolution stack
/// (F.ConvStack) in first-order passes, and op by op elsewhere: both must be the same network.
/// </summary>
public class Conv4Tests
{
    private const int Tasks = 3, Images = 4;

    private static Conv4 Model(Generator g) => new([1, 12, 12], filters: 16, outputs: 5, maxPool: false, g, Device.Cpu);

    /// <summary>Per-task weights: θ moved differently for each task (as after an inner step), or θ expanded (before one).</summary>
    private static Tensor[] Weights(Conv4 model, Tensor x, bool perTask, Generator g) =>
        perTask
            ? [.. model.Parameters.Select(p => (p.Detach().Unsqueeze(0) + 0.05 * Torch.Randn([Tasks, .. p.Shape], generator: g)).RequiresGrad_())]
            : [.. model.WeightsFor(x)];

    private static (Tensor Output, Tensor?[] Gradients) Pass(Conv4 model, Tensor x, Tensor[] w, bool firstOrder)
    {
        using var once = FirstOrderPasses.Enter(firstOrder);
        var output = model.Forward(x, w);
        var loss = (output * output).Sum();
        return (output.Detach(), Torch.Grad([loss], w));
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_first_order_pass_over_a_meta_batch_gives_the_op_by_op_outputs_and_gradients(bool perTask)
    {
        Skip.IfNot(F.ConvStackAvailable, "the blocked convolution stack needs AVX-512 and a libtorch that links oneDNN");
        using var scope = Torch.NewScope();
        using var g = new Generator(7);
        using var model = Model(g);
        var x = Torch.Randn([Tasks, Images, 1, 12, 12], generator: g);
        var w = Weights(model, x, perTask, g);
        var (opByOp, opGrads) = Pass(model, x, w, firstOrder: false);
        var (stack, stackGrads) = Pass(model, x, w, firstOrder: true);
        GradientAssert.AgreeToScale([opByOp], [stack], 1e-5, "op by op", "stack");
        GradientAssert.AgreeToScale(opGrads, stackGrads, 1e-5, "op by op", "stack");
    }

    [SkippableFact]
    public void The_stack_is_what_first_order_passes_take_and_it_refuses_a_second_order_backward()
    {
        Skip.IfNot(F.ConvStackAvailable, "the blocked convolution stack needs AVX-512 and a libtorch that links oneDNN");
        using var scope = Torch.NewScope();
        using var g = new Generator(8);
        using var model = Model(g);
        var x = Torch.Randn([Tasks, Images, 1, 12, 12], generator: g);
        var w = model.WeightsFor(x);
        var secondOrder = Torch.Grad([model.Forward(x, w).Square().Sum()], w, createGraph: true);
        Assert.All(secondOrder, t => Assert.True(t!.RequiresGrad));
        using var once = FirstOrderPasses.Enter();
        var loss = model.Forward(x, w).Square().Sum();
        var e = Assert.Throws<TorchException>(() => Torch.Grad([loss], w, createGraph: true));
        Assert.Contains("no second-order backward", e.Message);
    }

    [SkippableFact]
    public void One_task_and_max_pooling_networks_stay_op_by_op_in_first_order_passes()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(9);
        using var once = FirstOrderPasses.Enter();
        using var pooled = new Conv4([1, 16, 16], filters: 16, outputs: 5, maxPool: true, g, Device.Cpu);
        var batch = Torch.Randn([Tasks, Images, 1, 16, 16], generator: g);
        var pw = pooled.WeightsFor(batch);
        Assert.All(Torch.Grad([pooled.Forward(batch, pw).Square().Sum()], pw, createGraph: true), t => Assert.True(t!.RequiresGrad));
        using var strided = Model(g);
        var one = Torch.Randn([Images, 1, 12, 12], generator: g);
        var sw = strided.WeightsFor(one);
        Assert.All(Torch.Grad([strided.Forward(one, sw).Square().Sum()], sw, createGraph: true), t => Assert.True(t!.RequiresGrad));
    }
}
