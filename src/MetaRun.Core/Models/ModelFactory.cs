using LibTorch;
using MetaRun.Config;

namespace MetaRun.Models;

public static class ModelFactory
{
    /// <summary>Builds the configured model with weights drawn from <paramref name="seed"/>.</summary>
    public static IModel Create(RunConfig config, long[] inputShape, int outputs, Device device, ulong seed)
    {
        using var g = new Generator(seed);
        var name = config.Model.Name == ModelName.Auto ? (config.Data.Dataset.HasImages() ? ModelName.Conv4 : ModelName.Mlp) : config.Model.Name;
        switch (name)
        {
            case ModelName.Mlp:
                return new Mlp(inputShape.Aggregate(1L, (a, b) => a * b), config.Model.Hidden, outputs, g, device);
            case ModelName.Conv4:
                if (inputShape.Length != 3) throw new ConfigException($"model.name: conv4 needs image data, but {config.Data.Dataset.Yaml()} gives inputs of shape [{string.Join(", ", inputShape)}]");
                var mini = config.Data.Dataset == Dataset.MiniImageNet;
                var filters = config.Model.Filters > 0 ? config.Model.Filters : mini ? 32 : 64;
                var maxPool = config.Model.Downsample == Downsample.Auto ? mini : config.Model.Downsample == Downsample.MaxPool;
                return new Conv4(inputShape, filters, outputs, maxPool, g, device);
            case ModelName.ResNet12:
                if (inputShape.Length != 3) throw new ConfigException($"model.name: resnet12 needs image data, but {config.Data.Dataset.Yaml()} gives inputs of shape [{string.Join(", ", inputShape)}]");
                return new ResNet12(inputShape, config.Model.Filters > 0 ? config.Model.Filters : 64, outputs, g, device);
            default:
                throw new ArgumentOutOfRangeException(nameof(config), name, null);
        }
    }
}
