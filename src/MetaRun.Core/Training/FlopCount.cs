using LibTorch;
using MetaRun.Config;
using MetaRun.Models;

namespace MetaRun.Training;

/// <summary>
/// The arithmetic of a meta-iteration, counted from the network's description
/// (<see cref="IDescribedModel.Body"/>) rather than measured: libtorch 1.13's C++ profiler
/// counts FLOPs of forward operators only, and a meta-iteration is mostly backward passes.
/// Counted: convolutions and linear layers, 2 FLOPs per multiply-add (batch norm, activations
/// and pooling are a few operations per element and are left out). Per pass, as is usual:
/// a backward pass costs twice its forward (gradients of inputs and of weights), and MAML's
/// second-order pass, which differentiates an inner step's backward pass, twice that backward.
/// </summary>
public static class FlopCount
{
    /// <summary>One layer's forward FLOPs for one example.</summary>
    public sealed record Layer(string Name, double Forward);

    /// <summary>FLOPs per meta-iteration by pass, and per layer of the forward pass.</summary>
    public sealed record Iteration(double Forward, double Backward, double SecondOrder, IReadOnlyList<(string Layer, double Forward, double Backward, double SecondOrder)> Layers)
    {
        public double Total => Forward + Backward + SecondOrder;
    }

    /// <summary>
    /// Forward FLOPs per example of the body and the head, layer by layer, for inputs of
    /// <paramref name="inputShape"/> ([C, H, W] or [D]); <paramref name="shapeOf"/> gives a weight's shape by name.
    /// </summary>
    public static IReadOnlyList<Layer> PerExample(IReadOnlyList<GraphLayer> body, string? headWeight, long[] inputShape, Func<string, long[]> shapeOf)
    {
        var layers = new List<Layer>();
        var blocks = 0;
        var shape = Walk(body, inputShape, shapeOf, layers, "", ref blocks);
        if (headWeight == null) return layers;
        var head = shapeOf(headWeight);
        layers.Add(new Layer("head", 2.0 * head[0] * head[1]));
        if (shape.Aggregate(1L, (a, b) => a * b) != head[1])
            throw new InvalidOperationException($"the body's output ({string.Join("×", shape)}) does not match the head's input width {head[1]}");
        return layers;
    }

    private static long[] Walk(IReadOnlyList<GraphLayer> body, long[] shape, Func<string, long[]> shapeOf, List<Layer> layers, string prefix, ref int blocks)
    {
        var convs = 0;
        var linears = 0;
        foreach (var layer in body)
            switch (layer)
            {
                case GraphConv c:
                {
                    var w = shapeOf(c.Weight);
                    long Out(long size) => (size + 2 * c.Padding - w[2]) / c.Stride + 1;
                    var (h, wd) = (Out(shape[1]), Out(shape[2]));
                    layers.Add(new Layer($"{prefix}conv{++convs}", 2.0 * w[0] * w[1] * w[2] * w[3] * h * wd));
                    shape = [w[0], h, wd];
                    break;
                }
                case GraphLinear l:
                {
                    var w = shapeOf(l.Weight);
                    layers.Add(new Layer($"{prefix}linear{++linears}", 2.0 * w[0] * w[1]));
                    shape = [w[0]];
                    break;
                }
                case GraphPool p:
                    shape = [shape[0], (shape[1] + 2 * p.Padding - p.Kernel) / p.Stride + 1, (shape[2] + 2 * p.Padding - p.Kernel) / p.Stride + 1];
                    break;
                case GraphGlobalAveragePool:
                    shape = [shape[0]];
                    break;
                case GraphFlatten:
                    shape = [shape.Aggregate(1L, (a, b) => a * b)];
                    break;
                case GraphResidual r:
                {
                    var block = ++blocks;
                    var main = Walk(r.Main, shape, shapeOf, layers, $"block{block}.", ref blocks);
                    Walk(r.Shortcut, shape, shapeOf, layers, $"block{block}.shortcut.", ref blocks);
                    shape = main;
                    break;
                }
            }
        return shape;
    }

    /// <summary>
    /// A meta-iteration of a learner that adapts the whole network by gradient steps (MAML and
    /// first-order MAML): per task and inner step, a support forward and backward; then a query
    /// forward and backward at the adapted weights; second order, per inner step the backward
    /// pass through that step's gradient. An embedding learner (ProtoNet) is one forward and
    /// backward pass over support and query. Null where no count is modelled.
    /// </summary>
    public static Iteration? Of(string algorithm, IReadOnlyList<Layer> perExample, int tasks, int support, int query, int innerSteps)
    {
        int passes;
        bool second;
        switch (algorithm)
        {
            case "maml" or "fomaml":
                (passes, second) = (innerSteps, algorithm == "maml");
                break;
            case "protonet":
                (passes, second) = (1, false);
                break;
            default:
                return null;
        }
        var rows = new List<(string, double, double, double)>();
        foreach (var l in perExample)
        {
            var s = l.Forward * support * tasks;
            var q = l.Forward * query * tasks;
            var forward = passes * s + q;
            rows.Add((l.Name, forward, 2 * forward, second ? passes * 4 * s : 0));
        }
        return new Iteration(rows.Sum(r => r.Item2), rows.Sum(r => r.Item3), rows.Sum(r => r.Item4), rows);
    }

    /// <summary>
    /// What this machine's matrix units reach through the same libtorch and threads: the best of
    /// a few float32 n×n matrix products, in GFLOP/s. The bench's fraction of peak divides by it.
    /// </summary>
    /// <summary>The count for an experiment's model and training episodes; null where it is not modelled.</summary>
    public static Iteration? Of(Experiment e, int tasks)
    {
        if (e.Model is not IDescribedModel described || !e.Config.Data.Dataset.HasImages()) return null;
        var shapes = e.Model.ParameterNames.Zip(e.Model.Parameters).ToDictionary(p => p.First, p => p.Second.Shape);
        var head = e.Model.IndicesOf(ParameterRole.HeadWeight).Select(i => e.Model.ParameterNames[i]).FirstOrDefault();
        var input = Data.ImageFormat.For(e.Config.Data).InputShape;
        var shape = e.TrainShape;
        return Of(e.Config.Algorithm.Name, PerExample(described.Body, head, input, n => shapes[n]), tasks, shape.Ways * shape.Shots, shape.Ways * shape.Queries, e.Config.Algorithm.InnerSteps);
    }

    public static double PeakGflops(int n = 2048, int repeats = 5)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        using var g = new Generator(1);
        var a = Torch.Randn([n, n], ScalarType.Float32, Device.Cpu, g);
        var b = Torch.Randn([n, n], ScalarType.Float32, Device.Cpu, g);
        a.MatMul(b).Dispose();
        var best = double.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            a.MatMul(b).Dispose();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }
}
