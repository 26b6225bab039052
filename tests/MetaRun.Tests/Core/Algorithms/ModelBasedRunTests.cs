using System.Text.Json;
using MetaRun.Tests.Cli;
using MetaRun.Tests.Distributed;
using MetaRun.Tests.Sweeps;
using MetaRun.Training;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// The model-based learners (SNAIL, MANN, CNP) through the real command line on Omniglot, as every
/// method: an interrupted run resumes bit for bit, `eval --attack` scores perturbed queries beside
/// the clean ones, `eval --nproc 2` gives the one-process result, and a sweep runs them.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class ModelBasedRunTests
{
    private static string[] Train(string algorithm, string run, int iterations, bool resume) =>
        ["train", Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), resume ? "--resume" : "--out", run, "--data-root", TestPaths.SharedDatasets,
         "--set", $"algorithm.name={algorithm}", "--set", "algorithm.test_inner_steps=0", "--set", $"algorithm.iterations={iterations}",
         "--set", "algorithm.meta_batch_size=2", "--set", "model.filters=8", "--set", "eval.interval=0", "--set", "data.train.queries=2",
         "--set", "checkpoint.interval=2", "--set", "threads=1", "--set", "workers=2"];

    private static byte[] Weights(string run)
    {
        using var c = Checkpoint.Load(Path.Combine(run, "checkpoints", "last.safetensors"));
        return [.. c.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToBytes())];
    }

    [Theory]
    [InlineData("snail")]
    [InlineData("mann")]
    [InlineData("cnp")]
    public void Resume_attack_and_several_ranks_work_as_for_every_method(string algorithm)
    {
        var dir = TestPaths.NewTempDir("modelbased-" + algorithm);
        var (straight, resumed) = (Path.Combine(dir, "straight"), Path.Combine(dir, "resumed"));
        // Each run in a process of its own, as a user's are. (Inside the test host, runs one after
        // another differed in the last bits while pool threads kept the thread count an earlier
        // test had given them: TaskWorkersTests.)
        var (code, err) = Metarun.Run(Train(algorithm, straight, 4, resume: false));
        Assert.True(code == 0, err);
        (code, err) = Metarun.Run(Train(algorithm, resumed, 2, resume: false));
        Assert.True(code == 0, err);
        var early = Weights(resumed);
        (code, err) = Metarun.Run(Train(algorithm, resumed, 4, resume: true));
        Assert.True(code == 0, err);
        Assert.NotEqual(early, Weights(resumed));
        Assert.Equal(Weights(straight), Weights(resumed));

        var (plain, attacked) = (Path.Combine(dir, "plain.json"), Path.Combine(dir, "fgsm.json"));
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", straight, "--episodes", "4", "--out", plain, "--data-root", TestPaths.SharedDatasets);
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", straight, "--episodes", "4", "--out", attacked, "--data-root", TestPaths.SharedDatasets,
            "--attack", "fgsm", "--epsilon", "0.2");
        Assert.True(code == 0, err);
        var clean = JsonDocument.Parse(File.ReadAllText(plain)).RootElement.GetProperty("mean").GetDouble();
        var json = JsonDocument.Parse(File.ReadAllText(attacked)).RootElement;
        Assert.Equal(clean, json.GetProperty("mean").GetDouble(), 6);
        Assert.InRange(json.GetProperty("attack").GetProperty("mean").GetDouble(), 0.0, 1.0);

        var two = Path.Combine(dir, "two.json");
        string output;
        (code, output) = Metarun.Run(["eval", "--checkpoint", straight, "--episodes", "4", "--out", two, "--data-root", TestPaths.SharedDatasets, "--nproc", "2", "--oversubscribe"]);
        Assert.True(code == 0, output);
        string Result(string f) => string.Join("\n", File.ReadAllLines(f).Where(l => !l.Contains("\"seconds\"")));
        Assert.Equal(Result(plain), Result(two));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void A_sweep_trains_and_evaluates_each_model_based_method()
    {
        var dir = TestPaths.NewTempDir("modelbased-sweep");
        var path = Path.Combine(dir, "mb.yaml");
        File.WriteAllText(path, $"""
            name: mb
            config: {Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml")}
            out: {Path.Combine(dir, "mb")}
            set: [algorithm.iterations=2, algorithm.meta_batch_size=2, model.filters=8, eval.interval=0, data.train.queries=2, algorithm.test_inner_steps=0, data.root={TestPaths.SharedDatasets}, threads=1]
            eval: {"{"}split: test, episodes: 3{"}"}
            list:
              - algorithm.name: snail
              - algorithm.name: mann
              - algorithm.name: cnp
            """);
        var (code, output) = SweepTestSupport.RunToEnd(dir, TimeSpan.FromMinutes(6), "sweep", path, "--parallel", "1");
        Assert.True(code == 0, output);
        var evals = Directory.GetFiles(Path.Combine(dir, "mb"), "eval.json", SearchOption.AllDirectories);
        Assert.Equal(3, evals.Length);
    }
}
