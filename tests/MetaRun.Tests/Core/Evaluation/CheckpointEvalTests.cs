using System.Text.Json;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Evaluation;

/// <summary>
/// `metarun train` then `metarun eval` for every method on a tiny run on the real Omniglot: eval
/// of the best checkpoint on the validation episodes reproduces the best validation accuracy
/// logged in training (of two validations), so every outer parameter (α, LSLR rates, per-step
/// batch-norm weights, ...) was saved and restored and evaluation runs the episodes validation ran.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class CheckpointEvalTests
{
    [Theory]
    [InlineData("maml")]
    [InlineData("pretrained")]
    [InlineData("maml", "model.name=resnet12", "model.filters=2")]
    [InlineData("fomaml", "algorithm.inner_steps=2")]
    [InlineData("reptile", "algorithm.inner_steps=2", "algorithm.outer_optimizer=sgd", "algorithm.outer_lr=1", "algorithm.outer_lr_schedule=linear")]
    [InlineData("metasgd")]
    [InlineData("alfa", "algorithm.inner_steps=2", "algorithm.test_inner_steps=2")]
    [InlineData("anil", "algorithm.inner_steps=2")]
    [InlineData("adml", "algorithm.epsilon=0.05")]
    [InlineData("alpha-maml", "algorithm.outer_optimizer=sgd", "algorithm.outer_lr=0.1")]
    [InlineData("protonet", "data.train.ways=10", "algorithm.test_inner_steps=0")]
    [InlineData("matchingnet", "algorithm.test_inner_steps=0")]
    [InlineData("matchingnet", "algorithm.test_inner_steps=0", "algorithm.fce=true")]
    [InlineData("relationnet", "algorithm.test_inner_steps=0")]
    [InlineData("snail", "algorithm.test_inner_steps=0")]
    [InlineData("mann", "algorithm.test_inner_steps=0")]
    [InlineData("cnp", "algorithm.test_inner_steps=0")]
    [InlineData("maml++", "algorithm.inner_steps=2", "algorithm.multi_step_loss=true", "algorithm.lslr=true", "algorithm.per_step_bn=true",
        "algorithm.first_order_iterations=1", "algorithm.outer_lr_schedule=cosine")]
    [InlineData("maml", "algorithm.inner_steps=2", "algorithm.lslr=true")]
    [InlineData("baseline", "algorithm.test_inner_steps=10", "algorithm.inner_lr=0.01")]
    [InlineData("baseline++", "algorithm.test_inner_steps=10", "algorithm.inner_lr=0.01", "algorithm.inner_optimizer=adam")]
    [InlineData("finetune", "algorithm.test_inner_steps=3", "algorithm.inner_lr=0.01", "algorithm.finetune=all")]
    [InlineData("abml", "algorithm.test_inner_steps=1", "algorithm.test_samples=3")]
    [InlineData("bmaml", "algorithm.particles=2", "algorithm.test_inner_steps=2")]
    [InlineData("imaml", "algorithm.inner_steps=3", "algorithm.cg_steps=2", "algorithm.inner_lr=0.1")]
    [InlineData("mldg", "data.split=lake", "algorithm.inner_lr=0.1", "algorithm.test_inner_steps=2")]
    [InlineData("mldg", "data.split=lake", "algorithm.inner_lr=0.1", "algorithm.domains=2", "algorithm.meta_test_weight=0.5", "algorithm.test_inner_steps=0")]
    public void EvalOfTheBestCheckpointReproducesTheLoggedValidation(string algorithm, params string[] extra)
    {
        var dir = TestPaths.NewTempDir("alg-" + algorithm);
        var run = Path.Combine(dir, "run");
        string[] sets = [$"algorithm.name={algorithm}", "algorithm.iterations=4", "algorithm.meta_batch_size=2", "model.filters=8", "eval.interval=2",
            "eval.episodes=6", "data.train.queries=2", "threads=1", "workers=1", .. extra];
        var args = new List<string> { "train", Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), "--out", run, "--data-root", TestPaths.SharedDatasets };
        foreach (var s in sets) args.AddRange(["--set", s]);
        var (code, _, err) = CliRunner.Run(args.ToArray());
        Assert.True(code == 0, err);
        var logged = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.TryGetProperty("val_accuracy", out _)).Select(r => r.GetProperty("val_accuracy").GetDouble()).ToArray();
        Assert.Equal(2, logged.Length);

        var result = Path.Combine(dir, "eval.json");
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", Path.Combine(run, "checkpoints", "best.safetensors"), "--split", "val", "--episodes", "6",
            "--out", result, "--data-root", TestPaths.SharedDatasets);
        Assert.True(code == 0, err);
        var json = JsonDocument.Parse(File.ReadAllText(result)).RootElement;
        Assert.Equal("accuracy", json.GetProperty("metric").GetString());
        Assert.Equal(Math.Round(logged.Max(), 6), json.GetProperty("mean").GetDouble(), 6);

        (code, _, err) = CliRunner.Run("eval", "--checkpoint", run, "--episodes", "4", "--out", result, "--data-root", TestPaths.SharedDatasets);
        Assert.True(code == 0, err);
        var test = JsonDocument.Parse(File.ReadAllText(result)).RootElement.GetProperty("mean").GetDouble();
        Assert.InRange(test, 0.0, 1.0);
    }
}
