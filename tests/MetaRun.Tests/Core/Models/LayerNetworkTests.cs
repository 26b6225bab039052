using LibTorch;
using MetaRun.Config;
using MetaRun.Models;

namespace MetaRun.Tests.Models;

public class LayerNetworkTests
{
    /// <summary>Outputs and gradients of two networks on the same input, one task and a meta-batch of three, compared bit for bit.</summary>
    private static void AssertSameBits(IModel builtIn, IModel layered, long[] example)
    {
        Assert.Equal(builtIn.Parameters.Count, layered.Parameters.Count);
        Assert.Equal(builtIn.Roles, layered.Roles);
        for (var i = 0; i < builtIn.Parameters.Count; i++)
            Assert.Equal(builtIn.Parameters[i].ToArray<float>(), layered.Parameters[i].ToArray<float>());
        Assert.Equal(builtIn.Features, layered.Features);
        using var g = new Generator(7);
        foreach (var shape in new[] { (long[])[6, .. example], [3, 6, .. example] })
        {
            using var scope = Torch.NewScope();
            var x = Torch.Randn(shape, generator: g);
            var (a, b) = (builtIn.WeightsFor(x), layered.WeightsFor(x));
            var (ya, yb) = (builtIn.Forward(x, a), layered.Forward(x, b));
            Assert.Equal(ya.ToArray<float>(), yb.ToArray<float>());
            // Second-order paths too: MAML differentiates through a gradient step.
            var ga = Torch.Grad([ya.Square().Sum()], builtIn.Parameters, createGraph: true);
            var gb = Torch.Grad([yb.Square().Sum()], layered.Parameters, createGraph: true);
            for (var i = 0; i < ga.Length; i++) Assert.Equal(ga[i]!.ToArray<float>(), gb[i]!.ToArray<float>());
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Conv4_as_a_layer_specification_gives_the_built_in_bits(bool maxPool)
    {
        using var scope = Torch.NewScope();
        long[] input = maxPool ? [3, 20, 20] : [1, 28, 28];
        using var g1 = new Generator(3);
        using var g2 = new Generator(3);
        using var builtIn = new Conv4(input, 8, 5, maxPool, g1, Device.Cpu);
        using var layered = new LayerNetwork(ReadySpecs.Conv4(8, maxPool), input, 5, g2, Device.Cpu);
        Assert.Equal(builtIn.ParameterNames, layered.ParameterNames);
        AssertSameBits(builtIn, layered, input);
    }

    [Fact]
    public void ResNet12_as_a_layer_specification_gives_the_built_in_bits()
    {
        using var scope = Torch.NewScope();
        long[] input = [3, 16, 16];
        using var g1 = new Generator(4);
        using var g2 = new Generator(4);
        using var builtIn = new ResNet12(input, 4, 5, g1, Device.Cpu);
        using var layered = new LayerNetwork(ReadySpecs.ResNet12(4), input, 5, g2, Device.Cpu);
        Assert.Equal(builtIn.ParameterNames, layered.ParameterNames);
        AssertSameBits(builtIn, layered, input);
    }

    [Fact]
    public void A_yaml_network_runs_a_meta_batch_as_each_task_alone()
    {
        var config = ConfigLoader.Parse("""
            data: {dataset: omniglot, image_size: 14}
            model:
              layers:
                - {type: conv, out: 6, kernel: 3, padding: 1, groups: 1}
                - {type: batchnorm}
                - leaky_relu
                - {type: residual, layers: [{type: conv, out: 6, kernel: 3, padding: 1, groups: 2}, batchnorm, relu], shortcut: []}
                - {type: avgpool, kernel: 2}
                - flatten
                - {type: linear, out: 10}
                - {type: batchnorm}
                - tanh
                - {type: linear}
            """, "net.yaml");
        using var scope = Torch.NewScope();
        using var g = new Generator(1);
        using var net = new LayerNetwork(ModelFactory.SpecOf(config.Model)!, [1, 14, 14], 4, g, Device.Cpu);
        Assert.Equal(10, net.Features);
        using var x = Torch.Randn([3, 5, 1, 14, 14], generator: g);
        var all = net.Forward(x, net.WeightsFor(x));
        for (var t = 0; t < 3; t++)
        {
            var one = net.Forward(x[t], net.Parameters);
            Assert.True((one - all[t]).Abs().Max().Item() < 1e-5);
        }
    }

    [Theory]
    [InlineData("- {type: conv, out: 8, kernel: 3}\n    - {type: conv, out: 8, kernel: 30}\n    - flatten\n    - {type: linear}", "c.yaml:5: model.layers[1].kernel: kernel 30 (stride 1, padding 0) does not fit the input [8, 26, 26]")]
    [InlineData("- {type: conv, out: 8, kernal: 3}\n    - {type: linear}", "c.yaml:4: unknown key 'model.layers[0].kernal' for a conv layer (did you mean 'kernel'?")]
    [InlineData("- {type: conv, out: 8, kernel: 3}\n    - {type: linear}", "c.yaml:5: model.layers[1]: the head (linear) needs feature vectors, but the layer before it gives [8, 26, 26]; add flatten or global_avg_pool")]
    [InlineData("- {type: maxpol, kernel: 2}\n    - {type: linear}", "c.yaml:4: 'model.layers[0].type' is 'maxpol' (did you mean 'maxpool'?")]
    [InlineData("- {type: conv, out: 8, kernel: 3}\n    - {type: residual, layers: [{type: conv, out: 4, kernel: 1}]}\n    - global_avg_pool\n    - {type: linear}", "model.layers[1].shortcut: the residual's layers give [4, 26, 26] but its shortcut gives [8, 26, 26]")]
    [InlineData("- {type: conv, out: 8, kernel: 3}\n    - flatten", "the last layer must be the head")]
    public void Layer_errors_name_the_layer_index_key_and_shapes_before_any_data_is_read(string layers, string expected)
    {
        var yaml = $"data: {{dataset: omniglot, root: /nonexistent}}\nmodel:\n  layers:\n    {layers}\n";
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_layer_network_config_round_trips_through_the_run_yaml_and_hash()
    {
        var config = ConfigLoader.Parse("""
            data: {dataset: omniglot}
            model:
              layers: [{type: conv, out: 8, kernel: 3, name: c1}, relu, global_avg_pool, {type: linear, name: fc}]
              freeze: [c1]
            """, "c.yaml");
        var again = ConfigLoader.ParseResolved(ConfigLoader.ToRunYaml(config), "run.yaml");
        Assert.Equal(ConfigLoader.Hash(config), ConfigLoader.Hash(again));
        Assert.Equal(ModelFactory.SpecOf(config.Model)!.Layers.Select(l => l.ToString()), ModelFactory.SpecOf(again.Model)!.Layers.Select(l => l.ToString()));
        var other = ConfigLoader.Parse("data: {dataset: omniglot}\nmodel:\n  layers: [{type: conv, out: 9, kernel: 3, name: c1}, relu, global_avg_pool, {type: linear, name: fc}]\n", "c.yaml");
        Assert.NotEqual(ConfigLoader.Hash(config), ConfigLoader.Hash(other));
    }
}
