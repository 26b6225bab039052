using LibTorch;
using MetaRun.Config;
using MetaRun.Models;

namespace MetaRun.Tests.Models;

/// <summary>model.init (a state dict by PyTorch names) and model.freeze on a layer network.</summary>
public class ModelInitTests
{
    private const string Layers = """
        data: {dataset: omniglot, image_size: 12}
        model:
          layers:
            - {type: conv, out: 4, kernel: 3, name: conv1, bias: false}
            - {type: batchnorm, name: bn1}
            - relu
            - {type: conv, out: 6, kernel: 3, name: conv2}
            - global_avg_pool
            - {type: linear, name: fc}
        """;

    private static (string Dir, string File) StateDict(Dictionary<string, Tensor> tensors)
    {
        var dir = TestPaths.NewTempDir("init");
        var file = Path.Combine(dir, "w.safetensors");
        Safetensors.Save(file, tensors);
        return (dir, file);
    }

    private static RunConfig Config(string file, string extra = "") =>
        ConfigLoader.Parse(Layers + $"\n  init: {file}\n" + extra, "c.yaml");

    [Fact]
    public void A_state_dict_loads_by_name_with_a_report_of_loaded_missing_unexpected_and_the_head()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(5);
        var conv1 = Torch.Randn([4, 1, 3, 3], generator: g);
        var mean = Torch.Randn([4], generator: g);
        var (_, file) = StateDict(new()
        {
            ["conv1.weight"] = conv1, ["bn1.weight"] = Torch.Ones([4]) * 2, ["bn1.bias"] = Torch.Zeros([4]),
            ["bn1.running_mean"] = mean, ["bn1.running_var"] = Torch.Ones([4]) * 4, ["bn1.num_batches_tracked"] = Torch.Zeros([], ScalarType.Int64),
            ["fc.weight"] = Torch.Zeros([1000, 6]), ["fc.bias"] = Torch.Zeros([1000]), ["layer9.weight"] = Torch.Zeros([3]),
        });
        var said = new List<string>();
        using var model = (LayerNetwork)ModelFactory.Create(Config(file), [1, 12, 12], 5, Device.Cpu, 1, said.Add);
        var report = model.Init!;
        Assert.Equal(["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"], report.Loaded);
        Assert.Equal(["conv2.weight", "conv2.bias"], report.Missing);
        Assert.Equal(["layer9.weight"], report.Unexpected);
        Assert.Equal(["fc.weight", "fc.bias"], report.SkippedHead);
        Assert.Contains(said, s => s.StartsWith("model: 6 layers from model.layers, ") && s.Contains(" parameters ("));
        Assert.Contains(said, s => s.Contains("5 tensor(s) loaded; 2 missing, left as drawn (conv2.weight, conv2.bias); 1 unexpected, not used (layer9.weight)"));
        Assert.Equal(conv1.ToArray<float>(), model.Parameters[model.ParameterNames.ToList().IndexOf("conv1.weight")].ToArray<float>());
        Assert.Equal([5, 6], model.Head(model.Parameters).Weight.Shape);
        // The file's running statistics are used (eval-mode batch norm), and stay fixed: they are no parameter.
        Assert.DoesNotContain("bn1.running_mean", model.ParameterNames);
        Assert.Equal(mean.ToArray<float>(), model.Constants["bn1.running_mean"].ToArray<float>());
        using var x = Torch.Randn([3, 1, 12, 12], generator: g);
        using var noGrad = Torch.NoGrad();
        var bn = model.Spec.Layers[1];
        var expected = F.BatchNorm(F.Conv2d(x, conv1), mean, Torch.Ones([4]) * 4, Torch.Ones([4]) * 2, Torch.Zeros([4]), training: false);
        var got = F.BatchNorm(F.Conv2d(x, model.TensorOf(model.Spec.Layers[0], "weight", model.Parameters)!), model.TensorOf(bn, "running_mean", model.Parameters), model.TensorOf(bn, "running_var", model.Parameters),
            model.TensorOf(bn, "weight", model.Parameters), model.TensorOf(bn, "bias", model.Parameters), training: false);
        Assert.Equal(expected.ToArray<float>(), got.ToArray<float>());
    }

    [Fact]
    public void A_tensor_of_the_wrong_shape_is_a_checkpoint_error_naming_it()
    {
        using var scope = Torch.NewScope();
        var (_, file) = StateDict(new() { ["conv1.weight"] = Torch.Zeros([4, 3, 3, 3]) });
        var e = Assert.Throws<CheckpointException>(() => ModelFactory.Create(Config(file), [1, 12, 12], 5, Device.Cpu, 1));
        Assert.Equal(ExitCodes.CheckpointProblem, e.ExitCode);
        Assert.Contains("tensor 'conv1.weight' has shape [4, 3, 3, 3], the network expects [4, 1, 3, 3]", e.Message);
    }

    [Fact]
    public void Frozen_layers_are_no_parameters_and_keep_the_files_values()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(6);
        var conv1 = Torch.Randn([4, 1, 3, 3], generator: g);
        var (_, file) = StateDict(new() { ["conv1.weight"] = conv1 });
        using var model = (LayerNetwork)ModelFactory.Create(Config(file, "  freeze: [conv1, bn1]\n"), [1, 12, 12], 5, Device.Cpu, 1);
        Assert.Equal(["conv2.weight", "conv2.bias", "head.weight", "head.bias"], model.ParameterNames);
        Assert.Equal(conv1.ToArray<float>(), model.Constants["conv1.weight"].ToArray<float>());
        Assert.Equal(["bn1.bias", "bn1.weight", "conv1.weight"], model.Constants.Keys.Order());
        using var body = (LayerNetwork)ModelFactory.Create(Config(file, "  freeze: [body]\n"), [1, 12, 12], 5, Device.Cpu, 1);
        Assert.Equal(["head.weight", "head.bias"], body.ParameterNames);
    }

    [Theory]
    [InlineData("  freeze: [conv3]\n", "c.yaml:10: 'model.freeze' names 'conv3', which is no layer of the network (did you mean 'conv1'?")]
    [InlineData("  init: /nonexistent/w.safetensors\n", "c.yaml:10: 'model.init' is '/nonexistent/w.safetensors', which does not exist")]
    public void Freeze_and_init_mistakes_are_config_errors_naming_the_line(string extra, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Layers + "\n" + extra, "c.yaml"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Init_on_a_built_in_network_is_a_config_error()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("data: {dataset: omniglot}\nmodel:\n  name: conv4\n  init: w.safetensors\n", "c.yaml"));
        Assert.Contains("c.yaml:4: 'model.init' needs a network given as layers", e.Message);
    }
}
