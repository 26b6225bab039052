using MetaRun.Config;

namespace MetaRun.Tests.Cli;

[Collection(ProcessWideCollection.Name)]
public class ConfigErrorTests
{
    [Theory]
    [InlineData("name: t\ndata:\n  datset: omniglot\n", "data.datset", ":3:")]
    [InlineData("name: t\nalgorithm:\n  inner_lr: fast\n", "algorithm.inner_lr", ":3:")]
    [InlineData("name: t\nalgorithm:\n  meta_batch_size: 0\n", "algorithm.meta_batch_size", ":3:")]
    [InlineData("name: t\nalgorithm:\n  name: magic\n", "algorithm.name", ":3:")]
    [InlineData("name: t\ndevice: tpu\n", "device", ":2:")]
    [InlineData("name: t\nmodel:\n  hidden: 40\n", "model.hidden", ":3:")]
    [InlineData("name: t\ndata: [1, 2]\n", "data", ":2:")]
    [InlineData("name: t\n  bad indent: [\n", "invalid YAML", ":")]
    [InlineData("name: t\ndata:\n  dataset: omniglot\n  train: {ways: 5}\n  test: {ways: 20}\n", "data.test.ways", "")]
    [InlineData("name: t\ndata:\n  dataset: omniglot\n  channels: 3\n", "data.channels", ":4:")]
    [InlineData("name: t\ndata:\n  dataset: folder\n  root: /tmp\n  channels: 2\n", "data.channels", ":5:")]
    [InlineData("name: t\ndata:\n  dataset: folder\n  root: /tmp\n  split_ratio: [0.5, 0.2]\n", "data.split_ratio", ":5:")]
    [InlineData("name: t\ndata:\n  dataset: miniimagenet\n  test: {within_alphabet: true}\n", "data.test.within_alphabet", ":4:")]
    public void BadConfigExitsTwoNamingKeyAndLine(string yaml, string key, string line)
    {
        var path = TestConfigs.Write(yaml).Path;
        var (code, _, err) = CliRunner.Run("train", path, "--out", Path.Combine(Path.GetDirectoryName(path)!, "run"));
        Assert.Equal(2, code);
        Assert.Contains(key, err);
        Assert.Contains(path + line, err.Replace("\\", "/"));
        Assert.DoesNotContain("   at ", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Theory]
    [InlineData("execution: fast\n", "t.yaml:1: 'execution' is 'fast'; expected one of: auto, per_task, batched")]
    [InlineData("data: {dataset: MiniImageNet}\n", "t.yaml:1: 'data.dataset' is 'MiniImageNet'; expected one of: sinusoid, linear, omniglot, miniimagenet, folder, navigation2d, features, quadratic")]
    [InlineData("device: 1\n", "t.yaml:1: 'device' is '1'; expected one of: auto, cpu, cuda")]
    [InlineData("model:\n  downsample:\n", "t.yaml:2: 'model.downsample' needs a value")]
    public void ASettingOutsideItsValuesNamesFileLineKeyAndTheAllowedValues(string yaml, string expected)
    {
        Assert.Equal(expected, Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "t.yaml")).Message);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("", "t.yaml", ["algorithm.outer_lr_schedule=cosin"]));
        Assert.Equal("--set algorithm.outer_lr_schedule=cosin: 'algorithm.outer_lr_schedule' is 'cosin'; expected one of: constant, linear, cosine", e.Message);
    }

    [Theory]
    [InlineData("algorithm.inner_lr=abc", "algorithm.inner_lr")]
    [InlineData("algorithm.nope=1", "algorithm.nope")]
    [InlineData("eval.interval=-1", "eval.interval")]
    [InlineData("no_equals_sign", "key.path=value")]
    public void BadSetOverrideExitsTwoNamingIt(string set, string expected)
    {
        var path = TestConfigs.Write(TestConfigs.TinySinusoid).Path;
        var (code, _, err) = CliRunner.Run("train", path, "--set", set, "--out", Path.Combine(Path.GetDirectoryName(path)!, "run"));
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
        Assert.Contains("--set", err);
    }

    [Fact]
    public void MissingConfigFileExitsTwo()
    {
        var (code, _, err) = CliRunner.Run("train", "/nonexistent/x.yaml");
        Assert.Equal(2, code);
        Assert.Contains("/nonexistent/x.yaml", err);
    }

    [Fact]
    public void MissingCheckpointExitsFour()
    {
        var (code, _, err) = CliRunner.Run("eval", "--checkpoint", "/nonexistent/last.safetensors");
        Assert.Equal(4, code);
        Assert.Contains("/nonexistent/last.safetensors", err);
    }

    [Fact]
    public void CorruptCheckpointExitsFour()
    {
        var path = Path.Combine(TestPaths.NewTempDir("ckpt"), "last.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        var (code, _, err) = CliRunner.Run("eval", "--checkpoint", path);
        Assert.Equal(4, code);
        Assert.Contains(path, err);
    }

}
