using LibTorch;

namespace MetaRun.Models;

/// <summary>A fully connected ReLU network (1-40-40-1 for sinusoid regression in Finn et al.).</summary>
public sealed class Mlp : ModelBase, IDescribedModel
{
    private readonly int layers;

    public Mlp(long inputs, IReadOnlyList<int> hidden, int outputs, Generator g, Device device)
    {
        var sizes = new List<long> { inputs };
        sizes.AddRange(hidden.Select(h => (long)h));
        sizes.Add(outputs);
        layers = sizes.Count - 1;
        Features = sizes[^2];
        for (var i = 0; i < layers - 1; i++)
        {
            Add($"layer{i}.weight", FanInUniform([sizes[i + 1], sizes[i]], sizes[i], g, device));
            Add($"layer{i}.bias", FanInUniform([sizes[i + 1]], sizes[i], g, device));
        }
        AddHead(FanInUniform([sizes[^1], sizes[^2]], sizes[^2], g, device), FanInUniform([sizes[^1]], sizes[^2], g, device));
    }
    public override long Features { get; }
    protected override int ExampleRank => 1;

    public IReadOnlyList<GraphLayer> Body => [.. Enumerable.Range(0, layers - 1).SelectMany(i => (GraphLayer[])[new GraphLinear($"layer{i}.weight", $"layer{i}.bias"), new GraphRelu()])];

    public override Tensor Embed(Tensor input, IReadOnlyList<Tensor> w)
    {
        var x = input;
        var batched = IsMetaBatch(input);
        for (var i = 0; i < layers - 1; i++)
            x = (batched ? Linear(x, w[2 * i], w[2 * i + 1], input.Size(0)) : F.Linear(x, w[2 * i], w[2 * i + 1])).Relu();
        return x;
    }
}
