using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Serialization;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace MetaRun.Config;

// The enumerated settings of a run. A member's YAML spelling is its name in lower case unless
// [EnumMember] gives another; those spellings are the file format (config.yaml, checkpoints'
// embedded configs, sweep files, --set) and feed the config hash, so they never change.

public enum DeviceKind { Auto, Cpu, Cuda }

public enum Execution { Auto, [EnumMember(Value = "per_task")] PerTask, Batched }

public enum Dataset { Sinusoid, Linear, Omniglot, MiniImageNet, Folder, Navigation2d, Features, Quadratic }

/// <summary>navigation2d: Finn et al.'s goals and reward (paper), or those of the authors' released code (official_code).</summary>
public enum NavigationVariant { Paper, [EnumMember(Value = "official_code")] OfficialCode }

public enum ModelName { Auto, Conv4, Mlp, ResNet12, ResNet18, ResNet50 }

/// <summary>Input normalization a pretrained body expects, applied as the network's first layer.</summary>
public enum InputNormalization { None, ImageNet }

public enum Downsample { Auto, Stride, MaxPool }

public enum OmniglotSplit { Vinyals, Lake }

public enum OptimizerKind { Sgd, Adam }

public enum LrSchedule { Constant, Linear, Cosine }

/// <summary>What finetune trains on a test episode's support set: a new head on the fixed body, or the whole network.</summary>
public enum FinetuneScope { Head, All }

public static class Settings
{
    private static readonly ConcurrentDictionary<Type, (Enum Value, string Yaml)[]> Spellings = new();

    private static (Enum Value, string Yaml)[] Of(Type type) => Spellings.GetOrAdd(type, t =>
        [.. t.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => ((Enum)f.GetValue(null)!, f.GetCustomAttribute<EnumMemberAttribute>()?.Value ?? f.Name.ToLowerInvariant()))]);

    /// <summary>The value as a config file spells it ("per_task", "miniimagenet").</summary>
    public static string Yaml(this Enum value) => Of(value.GetType()).First(s => s.Value.Equals(value)).Yaml;

    /// <summary>Every spelling of <paramref name="type"/>'s values, in declaration order (for "expected one of").</summary>
    public static IEnumerable<string> Spelled(Type type) => Of(type).Select(s => s.Yaml);

    /// <summary>The value spelled exactly <paramref name="yaml"/>; numbers and other casings are not values.</summary>
    public static bool TryParse(Type type, string yaml, out Enum? value)
    {
        value = Of(type).FirstOrDefault(s => s.Yaml == yaml).Value;
        return value != null;
    }

    public static T Parse<T>(string yaml) where T : struct, Enum =>
        TryParse(typeof(T), yaml, out var v) ? (T)v! : throw new ArgumentException($"'{yaml}' is not one of: {string.Join(", ", Spelled(typeof(T)))}");

    /// <summary>
    /// The one place that decides whether a data set is regression (one "way" of K points, scored by
    /// MSE) or classification (N-way episodes, scored by accuracy): the config checks, the task
    /// families, the objective and its headline metric, and the reports all ask here.
    /// An environment family (navigation2d) counts as regression here: no classes, one task per
    /// episode, an MLP, and a loss (the negative return) where lower is better.
    /// </summary>
    public static bool IsRegression(this Dataset dataset) => dataset is Dataset.Sinusoid or Dataset.Linear or Dataset.Navigation2d or Dataset.Quadratic;

    /// <summary>
    /// A task's examples as the CLI, the catalogue and TensorBoard name them: "5-way 1-shot", "K=10"
    /// points, "20 trajectories" of an environment, or "one quadratic", which has no points to count.
    /// </summary>
    public static string EpisodeText(this Dataset dataset, int ways, int shots, int trajectories) => dataset switch
    {
        Dataset.Quadratic => "one quadratic",
        _ when dataset.IsEnvironment() => $"{trajectories} trajectories",
        _ when dataset.IsRegression() => $"K={shots}",
        _ => $"{ways}-way {shots}-shot",
    };

    /// <summary>Whether a task of the data set is an environment to act in rather than labelled examples (meta-reinforcement learning).</summary>
    public static bool IsEnvironment(this Dataset dataset) => dataset is Dataset.Navigation2d;

    /// <summary>Whether examples are images (conv4, resnet12) rather than vectors (mlp): regression points, environments and feature vectors are not.</summary>
    public static bool HasImages(this Dataset dataset) => !dataset.IsRegression() && dataset != Dataset.Features;
}

/// <summary>Writes the enumerated settings with their YAML spelling, plain, as the strings they were before.</summary>
internal sealed class SettingConverter : IYamlTypeConverter
{
    public bool Accepts(Type type) => type.IsEnum && type.Namespace == typeof(Dataset).Namespace;

    // Configs are read by ConfigLoader's own binding, which names file, key and line.
    public object? ReadYaml(IParser parser, Type type, ObjectDeserializer rootDeserializer) => throw new NotSupportedException();

    public void WriteYaml(IEmitter emitter, object? value, Type type, ObjectSerializer serializer) =>
        emitter.Emit(new Scalar(((Enum)value!).Yaml()));
}
