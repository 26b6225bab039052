namespace MetaRun.Models;

/// <summary>
/// Networks written as layer specifications. resnet18 and resnet50 follow torchvision's module
/// layout and names (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, fc), so a state dict
/// saved from torchvision.models.resnet18() loads by name; conv4 and resnet12 are the built-in
/// networks as specifications (a test checks they give the built-ins' bits).
/// </summary>
public static class ReadySpecs
{
    /// <summary>Conv4 (<see cref="Conv4"/>): four blocks of 3×3 convolution, batch norm, ReLU, and stride 2 or 2×2 max-pooling.</summary>
    public static NetworkSpec Conv4(int filters, bool maxPool)
    {
        var layers = new List<Layer>();
        for (var b = 0; b < 4; b++)
        {
            layers.Add(new ConvLayer($"block{b}.conv", filters, 3, maxPool ? 1 : 2, 1, 1, true, WeightInit.XavierUniform));
            layers.Add(new BatchNormLayer($"block{b}.bn", BatchNormStats.Batch, 1e-5));
            layers.Add(new ActivationLayer($"block{b}.relu", ActivationKind.Relu, 0));
            if (maxPool) layers.Add(new PoolLayer($"block{b}.pool", PoolKind.Max, 2, 2, 0));
        }
        layers.Add(maxPool ? new FlattenLayer("flatten") : new GlobalAvgPoolLayer("pool"));
        layers.Add(Head("head", WeightInit.XavierUniform));
        return new NetworkSpec(layers);
    }

    /// <summary>ResNet-12 (<see cref="ResNet12"/>): four residual blocks of widths w·(1, 2.5, 5, 10).</summary>
    public static NetworkSpec ResNet12(int filters)
    {
        var layers = new List<Layer>();
        double[] widths = [1, 2.5, 5, 10];
        for (var b = 0; b < 4; b++)
        {
            var width = (int)Math.Round(filters * widths[b]);
            var body = new List<Layer>();
            for (var c = 0; c < 3; c++)
            {
                body.Add(new ConvLayer($"block{b}.conv{c}", width, 3, 1, 1, 1, false, WeightInit.KaimingNormal));
                body.Add(new BatchNormLayer($"block{b}.conv{c}.bn", BatchNormStats.Batch, 1e-5));
                if (c < 2) body.Add(new ActivationLayer($"block{b}.act{c}", ActivationKind.LeakyRelu, 0.1));
            }
            layers.Add(new ResidualLayer($"block{b}", body,
                [new ConvLayer($"block{b}.shortcut", width, 1, 1, 0, 1, false, WeightInit.KaimingNormal), new BatchNormLayer($"block{b}.shortcut.bn", BatchNormStats.Batch, 1e-5)]));
            layers.Add(new ActivationLayer($"block{b}.act", ActivationKind.LeakyRelu, 0.1));
            layers.Add(new PoolLayer($"block{b}.pool", PoolKind.Max, 2, 2, 0));
        }
        layers.Add(new GlobalAvgPoolLayer("pool"));
        layers.Add(Head("head", WeightInit.XavierUniform));
        return new NetworkSpec(layers);
    }

    /// <summary>torchvision's resnet18 (BasicBlock ×[2, 2, 2, 2]); <paramref name="width"/> 64 is torchvision's, smaller ones make test fixtures small.</summary>
    public static NetworkSpec ResNet18(int width = 64) => ResNet(width, [2, 2, 2, 2], bottleneck: false);

    /// <summary>torchvision's resnet50 (Bottleneck ×[3, 4, 6, 3], expansion 4, stride on the 3×3 convolution: ResNet v1.5).</summary>
    public static NetworkSpec ResNet50(int width = 64) => ResNet(width, [3, 4, 6, 3], bottleneck: true);

    private static NetworkSpec ResNet(int width, int[] blocks, bool bottleneck)
    {
        // torchvision: kaiming_normal_(fan_out, relu) convolutions, batch norm 1 and 0, default (fan-in uniform) fc.
        static ConvLayer Conv(string name, int outC, int k, int stride) => new(name, outC, k, stride, k / 2, 1, false, WeightInit.KaimingNormal);
        static BatchNormLayer Bn(string name) => new(name, BatchNormStats.Auto, 1e-5);
        static ActivationLayer Relu(string name) => new(name, ActivationKind.Relu, 0);
        var expansion = bottleneck ? 4 : 1;
        var layers = new List<Layer> { Conv("conv1", width, 7, 2) with { Padding = 3 }, Bn("bn1"), Relu("relu"), new PoolLayer("maxpool", PoolKind.Max, 3, 2, 1) };
        var inC = width;
        for (var stage = 0; stage < 4; stage++)
        {
            var planes = width << stage;
            for (var i = 0; i < blocks[stage]; i++)
            {
                var name = $"layer{stage + 1}.{i}";
                var stride = stage > 0 && i == 0 ? 2 : 1;
                List<Layer> body = bottleneck
                    ? [Conv($"{name}.conv1", planes, 1, 1), Bn($"{name}.bn1"), Relu($"{name}.relu1"), Conv($"{name}.conv2", planes, 3, stride), Bn($"{name}.bn2"), Relu($"{name}.relu2"), Conv($"{name}.conv3", planes * 4, 1, 1), Bn($"{name}.bn3")]
                    : [Conv($"{name}.conv1", planes, 3, stride), Bn($"{name}.bn1"), Relu($"{name}.relu1"), Conv($"{name}.conv2", planes, 3, 1), Bn($"{name}.bn2")];
                List<Layer> shortcut = stride != 1 || inC != planes * expansion
                    ? [Conv($"{name}.downsample.0", planes * expansion, 1, stride), Bn($"{name}.downsample.1")]
                    : [];
                layers.Add(new ResidualLayer(name, body, shortcut));
                layers.Add(Relu($"{name}.relu"));
                inC = planes * expansion;
            }
        }
        layers.Add(new GlobalAvgPoolLayer("avgpool"));
        layers.Add(Head("fc", WeightInit.FanInUniform));
        return new NetworkSpec(layers);
    }

    private static LinearLayer Head(string name, WeightInit init) => new(name, 0, true, init);

    /// <summary>ImageNet's channel means and standard deviations, the input a torchvision model pretrained on it expects (after scaling to 0–1).</summary>
    public static NormalizeLayer ImageNetNormalize() => new("normalize", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
}
