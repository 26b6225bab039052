using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Tests.Training;

public sealed class FlopCountTests
{
    // Conv4 with stride-2 convolutions on 28 px Omniglot (MAML's Omniglot network), 64 filters, 5 ways.
    private static readonly Dictionary<string, long[]> Shapes = new()
    {
        ["c1"] = [64, 1, 3, 3], ["c2"] = [64, 64, 3, 3], ["c3"] = [64, 64, 3, 3], ["c4"] = [64, 64, 3, 3], ["head"] = [5, 256],
    };

    private static readonly GraphLayer[] Body =
    [
        new GraphConv("c1", "b1", 2, 1), new GraphBatchNorm("g1", "h1"), new GraphRelu(),
        new GraphConv("c2", "b2", 2, 1), new GraphBatchNorm("g2", "h2"), new GraphRelu(),
        new GraphConv("c3", "b3", 2, 1), new GraphBatchNorm("g3", "h3"), new GraphRelu(),
        new GraphConv("c4", "b4", 2, 1), new GraphBatchNorm("g4", "h4"), new GraphRelu(),
        new GraphFlatten(),
    ];

    [Fact]
    public void A_convolutions_count_is_two_per_multiply_add_over_its_output_map()
    {
        var layers = FlopCount.PerExample(Body, "head", [1, 28, 28], n => Shapes[n]);
        // 28 → 14 → 7 → 4 → 2 pixels a side; 2 · out · in · 3 · 3 · H · W each.
        Assert.Equal([2.0 * 64 * 1 * 9 * 14 * 14, 2.0 * 64 * 64 * 9 * 7 * 7, 2.0 * 64 * 64 * 9 * 4 * 4, 2.0 * 64 * 64 * 9 * 2 * 2, 2.0 * 5 * 256],
            layers.Select(l => l.Forward));
        Assert.Equal(["conv1", "conv2", "conv3", "conv4", "head"], layers.Select(l => l.Name));
    }

    [Fact]
    public void A_maml_iteration_adds_a_second_order_pass_that_first_order_maml_leaves_out()
    {
        var perExample = FlopCount.PerExample(Body, "head", [1, 28, 28], n => Shapes[n]);
        var image = perExample.Sum(l => l.Forward);
        // The bar configuration: 32 tasks, 5 support and 5 query images each, one inner step.
        var maml = FlopCount.Of("maml", perExample, tasks: 32, support: 5, query: 5, innerSteps: 1)!;
        var fomaml = FlopCount.Of("fomaml", perExample, tasks: 32, support: 5, query: 5, innerSteps: 1)!;
        Assert.Equal(32 * 10 * image, maml.Forward, 1e-6);
        Assert.Equal(2 * maml.Forward, maml.Backward, 1e-6);
        Assert.Equal(32 * 5 * 4 * image, maml.SecondOrder, 1e-6);
        Assert.Equal(0, fomaml.SecondOrder);
        Assert.Equal(maml.Total - maml.SecondOrder, fomaml.Total, 1e-6);
        // About 8.5 and 5.1 GFLOP.
        Assert.InRange(maml.Total / 1e9, 8.4, 8.6);
        Assert.InRange(fomaml.Total / 1e9, 5.0, 5.2);
        // Three inner steps: three support passes and three second-order passes.
        var three = FlopCount.Of("maml", perExample, 32, 5, 5, 3)!;
        Assert.Equal(32 * (15 + 5) * image, three.Forward, 1e-6);
        Assert.Equal(3 * maml.SecondOrder, three.SecondOrder, 1e-6);
        Assert.Null(FlopCount.Of("reptile", perExample, 32, 5, 5, 1));
    }

    [Fact]
    public void A_residual_blocks_main_path_and_shortcut_are_both_counted()
    {
        var shapes = new Dictionary<string, long[]> { ["a"] = [8, 3, 3, 3], ["b"] = [8, 8, 3, 3], ["s"] = [8, 3, 1, 1], ["head"] = [5, 8] };
        GraphLayer[] body = [new GraphResidual([new GraphConv("a", null, 1, 1), new GraphRelu(), new GraphConv("b", null, 1, 1)], [new GraphConv("s", null, 1, 0)]), new GraphPool(false, 2, 2, 0), new GraphGlobalAveragePool()];
        var layers = FlopCount.PerExample(body, "head", [3, 10, 10], n => shapes[n]);
        Assert.Equal(["block1.conv1", "block1.conv2", "block1.shortcut.conv1", "head"], layers.Select(l => l.Name));
        Assert.Equal([2.0 * 8 * 3 * 9 * 100, 2.0 * 8 * 8 * 9 * 100, 2.0 * 8 * 3 * 100, 2.0 * 5 * 8], layers.Select(l => l.Forward));
    }
}
