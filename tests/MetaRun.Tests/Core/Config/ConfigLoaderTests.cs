using MetaRun.Config;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Config;

/// <summary>Configs that once crashed, failed late or were silently accepted: each is refused up front, naming what is wrong.</summary>
[Collection(ProcessWideCollection.Name)]
public class ConfigLoaderTests
{
    private static void AssertOneLine(string err)
    {
        Assert.DoesNotContain("   at ", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    // ---- case 1: deep nesting and size, in a child process (a stack overflow kills its process)

    [Fact]
    public void DeeplyNestedYamlExitsTwoNamingTheFile()
    {
        var (dir, path) = TestConfigs.Write("name: t\nmodel: { hidden: " + new string('[', 60_000) + new string(']', 60_000) + " }\n");
        var (code, _, err) = ChildProcess.Run(["train", path, "--out", System.IO.Path.Combine(dir, "run")]);
        Assert.True(code == 2, $"exit {code}: {err[..Math.Min(err.Length, 500)]}");
        Assert.Contains(path + ":2:", err);
        Assert.Contains("nested more than", err);
        AssertOneLine(err);
        Assert.False(Directory.Exists(System.IO.Path.Combine(dir, "run")));
    }

    [Fact]
    public void ADeeplyNestedSetValueExitsTwoNamingTheSet()
    {
        var (dir, path) = TestConfigs.Write(TestConfigs.TinySinusoid);
        var (code, _, err) = CliRunner.Run("train", path, "--set", "model.hidden=" + new string('[', 40) + new string(']', 40), "--out", System.IO.Path.Combine(dir, "run"));
        Assert.Equal(2, code);
        Assert.Contains("--set model.hidden=", err);
        AssertOneLine(err);
    }

    [Fact]
    public void AnOversizedConfigExitsTwoWithoutReadingItWhole()
    {
        var (dir, path) = TestConfigs.Write("name: t\n# " + new string('x', 2 << 20) + "\n");
        var (code, _, err) = CliRunner.Run("train", path, "--out", System.IO.Path.Combine(dir, "run"));
        Assert.Equal(2, code);
        Assert.Contains(path, err);
        Assert.Contains("larger than", err);
        AssertOneLine(err);
    }

    [Fact]
    public void YamlThatBreaksTheParserExitsTwo()
    {
        // Found by FuzzTests: YamlDotNet's scanner throws InvalidOperationException on this.
        var (dir, path) = TestConfigs.Write("  train: {shots: 10, q|-x>x:[\tueries: 10}\n  interval: 500");
        var (code, _, err) = CliRunner.Run("train", path, "--out", System.IO.Path.Combine(dir, "run"));
        Assert.True(code == 2, err);
        Assert.Contains(path + ": invalid YAML", err);
        AssertOneLine(err);
    }

    // ---- case 8: config errors found before any data is read

    [Theory]
    [InlineData("model:\n  name: mlp\n", "model.name", ":5:")]
    [InlineData("  test:\n    shots: 5\n    queries: 16\n", "data.test.queries", ":6:")]
    [InlineData("  train:\n    shots: 19\n    queries: 2\n", "data.train.queries", ":6:")]
    [InlineData("  split: lake\n  train:\n    ways: 800\nalgorithm:\n  name: protonet\n", "data.train.ways", ":6:")]
    [InlineData("  test:\n    ways: 500\nalgorithm:\n  name: protonet\n", "data.test.ways", ":5:")]
    public void AnImpossibleOmniglotConfigExitsTwoBeforeReadingData(string tail, string key, string line)
    {
        // A data root that does not exist: reaching the data would be exit 3, so exit 2 shows the
        // check ran first.
        var (dir, path) = TestConfigs.Write("name: t\ndata:\n  dataset: omniglot\n" + tail);
        var (code, _, err) = CliRunner.Run("train", path, "--data-root", "/nonexistent/data", "--out", System.IO.Path.Combine(dir, "run"));
        Assert.True(code == 2, err);
        Assert.Contains($"'{key}'", err);
        Assert.Contains(path + line, err);
        AssertOneLine(err);
        Assert.False(Directory.Exists(System.IO.Path.Combine(dir, "run")));
    }

    [Fact]
    public void AnEvalWaysOverrideBeyondTheSplitIsNamed()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("name: t\ndata:\n  dataset: omniglot\nalgorithm:\n  name: protonet\n", "x.yaml", ["data.test.ways=401"]));
        Assert.StartsWith("--set data.test.ways=401:", e.Message);
        Assert.Contains("400 classes", e.Message);
    }

    // ---- case 9: silently accepted

    [Fact]
    public void ASecondYamlDocumentIsRefused()
    {
        var (dir, path) = TestConfigs.Write("name: t\n---\nname: u\n");
        var (code, _, err) = CliRunner.Run("train", path, "--out", System.IO.Path.Combine(dir, "run"));
        Assert.Equal(2, code);
        Assert.Contains(path + ":2:", err);
        Assert.Contains("second YAML document", err);
    }

    [Theory]
    [InlineData("name: \"../../escape\"\n", "'name'")]
    [InlineData("name: \"\"\n", "'name'")]
    [InlineData("name: \"a/b\"\n", "'name'")]
    [InlineData("name: t\noutput:\n  dir: \"\"\n", "'output.dir'")]
    [InlineData("name: t\nalgorithm:\n  outer_lr: 0\n", "'algorithm.outer_lr'")]
    public void ABadNameOrZeroRateExitsTwoAndWritesNothing(string yaml, string key)
    {
        var (dir, path) = TestConfigs.Write(yaml);
        var work = Directory.CreateDirectory(System.IO.Path.Combine(dir, "a", "b")).FullName;
        var before = Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories);
        var old = Environment.CurrentDirectory;
        Environment.CurrentDirectory = work;
        try
        {
            var (code, _, err) = CliRunner.Run("train", path);
            Assert.True(code == 2, err);
            Assert.Contains(key, err);
            Assert.Contains(path + ":", err);
            AssertOneLine(err);
        }
        finally
        {
            Environment.CurrentDirectory = old;
        }
        Assert.Equal(before, Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void SettingASectionKeepsItsOtherKeys()
    {
        var c = ConfigLoader.Parse(TestConfigs.TinySinusoid, "x.yaml", ["algorithm={iterations: 3}"]);
        Assert.Equal(3, c.Algorithm.Iterations);
        Assert.Equal(2, c.Algorithm.MetaBatchSize);
        Assert.Equal("maml", c.Algorithm.Name);
    }

    [Fact]
    public void SetErrorsNameTheSetNotTheFile()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(TestConfigs.TinySinusoid, "x.yaml", ["algorithm={inner_lr: fast}"]));
        Assert.StartsWith("--set algorithm={inner_lr: fast}:", e.Message);
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(TestConfigs.TinySinusoid, "x.yaml", ["algorithm={nope: 1}"]));
        Assert.StartsWith("--set algorithm={nope: 1}:", e.Message);
        Assert.DoesNotContain("x.yaml", e.Message);
    }

    [Fact]
    public void AFolderGivenAsConfigIsNamedAsAFolder()
    {
        var dir = TestPaths.NewTempDir("hostile");
        var (code, _, err) = CliRunner.Run("train", dir);
        Assert.Equal(2, code);
        Assert.Contains($"{dir}: is a folder", err);
    }

    [Theory]
    [InlineData("algoritm.inner_lr=0.1", "--set algoritm.inner_lr=0.1: unknown key 'algoritm' (did you mean 'algorithm'?")]
    [InlineData("ALGORITHM.ITERATIONS=2", "--set ALGORITHM.ITERATIONS=2: unknown key 'ALGORITHM' (did you mean 'algorithm'?")]
    [InlineData("algorithm.inner_lrr=0.1", "--set algorithm.inner_lrr=0.1: unknown key 'algorithm.inner_lrr' (did you mean 'algorithm.inner_lr'?")]
    public void AMistypedSetKeyIsBlamedOnTheSetAndGetsASuggestion(string set, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"), [set]));
        Assert.StartsWith(expected, e.Message);
    }

    [Fact]
    public void AMistypedKeyInAFileGetsASuggestionAndNoneWhenNothingIsClose()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("algorithm:\n  name: maml\n  inner_stpes: 2\n", "t.yaml"));
        Assert.StartsWith("t.yaml:3: unknown key 'algorithm.inner_stpes' (did you mean 'algorithm.inner_steps'?", e.Message);
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("zzzzzzzz: 1\n", "t.yaml"));
        Assert.DoesNotContain("did you mean", e.Message);
    }

    [Fact]
    public void ARunsConfigHoldsOnlyTheKeysItReadsAndLoadsBackTheSame()
    {
        foreach (var file in Directory.EnumerateFiles(TestPaths.Configs, "*.yaml", SearchOption.AllDirectories).Where(f => !f.Contains("/sweeps/"))
                     // A recipe that names weights the user downloads (model.init) loads only where they are.
                     .Where(f => !File.ReadAllText(f).Contains("\n  init:")))
        {
            var config = ConfigLoader.Load(file, []);
            var yaml = ConfigLoader.ToRunYaml(config);
            Assert.Empty(ConfigKeys.Differences(config, ConfigLoader.Parse(yaml, file)));
            var keys = yaml.Split('\n').Select(l => l.Trim().Split(':')[0]).ToHashSet();
            if (config.Algorithm.Name != "adml") Assert.DoesNotContain("epsilon", keys);
            if (config.Algorithm.Name != "matchingnet") Assert.DoesNotContain("fce", keys);
            if (config.Data.Dataset.HasImages()) Assert.DoesNotContain("hidden", keys);
        }
        var protonet = ConfigLoader.ToRunYaml(ConfigLoader.Load(Path.Combine(TestPaths.Configs, "omniglot", "protonet-5w1s.yaml"), []));
        Assert.DoesNotContain("inner_lr", protonet);
        Assert.Contains("outer_lr", protonet);
        // The data came from --data-root or the default folder, not from a blank data.root.
        Assert.DoesNotContain("root:", protonet);
        var folder = ConfigLoader.Load(Path.Combine(TestPaths.Configs, "omniglot", "protonet-5w1s.yaml"), ["data.root=/data/sets"]);
        Assert.Contains("root: /data/sets", ConfigLoader.ToRunYaml(folder));
    }
}
