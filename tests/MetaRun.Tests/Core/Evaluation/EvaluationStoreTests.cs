using System.Text.Json;
using MetaRun.Evaluation;
using MetaRun.Reports;
using MetaRun.Tests.Cli;
using MetaRun.Tests.Reports;

namespace MetaRun.Tests.Evaluation;

/// <summary>Every evaluation of a run kept apart; compare and report read the clean test result of the best checkpoint by rule.</summary>
[Collection(ProcessWideCollection.Name)]
public class EvaluationStoreTests
{
    private static string Trained(string dir, string name = "run", string dataset = "sinusoid")
    {
        var config = Path.Combine(dir, name + ".yaml");
        File.WriteAllText(config, $"""
            name: {name}
            threads: 1
            data:
              dataset: {dataset}
              train: {"{shots: 5, queries: 5}"}
              test: {"{shots: 5, queries: 5}"}
            algorithm: {"{name: maml, inner_lr: 0.01, meta_batch_size: 2, iterations: 4}"}
            eval: {"{interval: 2, episodes: 4}"}
            """);
        var run = Path.Combine(dir, name);
        var (code, _, err) = CliRunner.Run("train", config, "--out", run);
        Assert.True(code == 0, err);
        return run;
    }

    private static void Eval(params string[] args)
    {
        var (code, _, err) = CliRunner.Run(["eval", .. args]);
        Assert.True(code == 0, err);
    }

    [Fact]
    public void AValidationEvaluationNeverShowsAsTheTestResult()
    {
        var run = Trained(TestPaths.NewTempDir("store"));
        Eval(run, "--episodes", "30");
        Eval(run, "--split", "val", "--episodes", "10");
        Eval(run, "--episodes", "12");

        var folder = RunFolder.Read(run);
        Assert.Equal(3, folder.Evaluations.Count);
        Assert.Equal(("test", 30, "best"), (folder.Eval!.Split, folder.Eval.Episodes, folder.Eval.Checkpoint));
        Assert.Equal("val", Assert.Single(folder.Variants).Key);
        // eval.json beside the checkpoint is still the latest, for scripts.
        var latest = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "checkpoints", "eval.json"))).RootElement;
        Assert.Equal(12, latest.GetProperty("episodes").GetInt32());

        var comparison = Comparison.Of([folder]);
        Assert.Contains("mse (val)", comparison.Headers);
        var cells = comparison.Cells()[0];
        Assert.Equal(folder.Eval.Mean.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture), cells[comparison.Headers.ToList().IndexOf("test mse")]);
    }

    [Fact]
    public void ARunFolderIsEvaluatedAtItsBestCheckpointAndSaysSo()
    {
        var run = Trained(TestPaths.NewTempDir("store"));
        var (code, output, err) = CliRunner.Run("eval", run, "--episodes", "5");
        Assert.True(code == 0, err);
        Assert.Contains($"checkpoint: {Path.GetFullPath(Path.Combine(run, "checkpoints", "best.safetensors"))}", output);
        var (both, _, bothErr) = CliRunner.Run("eval", run, "--checkpoint", run);
        Assert.Equal(2, both);
        Assert.Contains("not both", bothErr);
    }

    [Fact]
    public void RunsJudgedByDifferentMetricsNeverShareAColumn()
    {
        var dir = TestPaths.NewTempDir("store");
        var sine = Trained(dir, "sine");
        Eval(sine, "--episodes", "5");
        var config = Path.Combine(dir, "omniglot.yaml");
        File.WriteAllText(config, """
            name: proto
            threads: 1
            data: {dataset: omniglot, train: {ways: 2, shots: 1, queries: 1}, test: {ways: 2, shots: 1, queries: 1}}
            model: {filters: 4}
            algorithm: {name: protonet, meta_batch_size: 2, iterations: 2}
            eval: {interval: 2, episodes: 2}
            """);
        var proto = Path.Combine(dir, "proto");
        var (code, _, err) = CliRunner.Run("train", config, "--out", proto, "--data-root", TestPaths.SharedDatasets);
        Assert.True(code == 0, err);
        Eval(proto, "--episodes", "5", "--data-root", TestPaths.SharedDatasets);

        var comparisons = Comparison.PerMetric(RunFolder.Discover([sine, proto]));
        Assert.Equal(["accuracy", "mse"], comparisons.Select(c => c.Metric));
        Assert.All(comparisons, c => Assert.Single(c.Rows));
        var (compared, output, compareErr) = CliRunner.Run("compare", sine, proto, "--format", "csv");
        Assert.True(compared == 0, compareErr);
        Assert.DoesNotContain(output.Split('\n'), l => l.Contains("test mse") && l.Contains("test accuracy"));
        Assert.Contains("test mse", output);
        Assert.Contains("test accuracy", output);
    }

    [Fact]
    public void AnOodRecordFromBeforeVariantsStillGivesTheRunItsOodFigures()
    {
        var dir = HtmlReportTests.WriteRuns(TestPaths.NewTempDir("store-old"), 1, 1)[0];
        var record = Path.Combine(dir, "evaluations", "test-best.json");
        // Before `eval --ood` had its own record, its figures sat in the plain one.
        File.WriteAllText(record, File.ReadAllText(record).TrimEnd()[..^1] + ",\"ood\":{\"auroc_entropy\":0.8125,\"auroc_max_probability\":0.75}}");
        File.Delete(Path.Combine(dir, "evaluations", "test-best-ood.json"));
        var run = RunFolder.Read(dir);
        Assert.Null(run.Headline!.Variant);
        Assert.Same(run.Headline, run.Ood);
        Assert.Empty(run.Variants);
        var comparison = Comparison.Of([run]);
        Assert.Equal("0.8125", comparison.Cells()[0][comparison.Headers.ToList().IndexOf("OOD AUROC (entropy)")]);
    }

    [Fact]
    public void TheStepCurvesRecordsNeverStandForTheRunNorShowAsOtherEvaluations()
    {
        var dir = HtmlReportTests.WriteRuns(TestPaths.NewTempDir("store-steps"), 1, 1)[0];
        var plain = File.ReadAllText(Path.Combine(dir, "evaluations", "test-best.json"));
        for (var k = 0; k <= 3; k++)
            File.WriteAllText(Path.Combine(dir, "evaluations", $"test-best-steps-{k}.json"),
                plain.Replace("\"inner_steps\":1", $"\"inner_steps\":{k}").Replace("\"mean\":", $"\"variant\":\"inner-steps\",\"mean\":{0.5 + 0.1 * k},\"old_mean\":")
                    .Replace("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"));
        var run = RunFolder.Read(dir);
        Assert.Null(run.Headline!.Variant);
        Assert.Empty(run.Variants);
        // Without a plain evaluation, the curve's point at the run's own step count stands for the run.
        File.Delete(Path.Combine(dir, "evaluations", "test-best.json"));
        var curveOnly = RunFolder.Read(dir);
        Assert.Equal((AdaptationCurve.Variant, 1, 0.6), (curveOnly.Headline!.Variant, curveOnly.Headline.InnerSteps, curveOnly.Headline.Mean));
        Assert.Empty(curveOnly.Variants);
        var figure = Figures.StepsFigure([run])!;
        Assert.Equal([0.5, 0.6, 0.7, 0.8], figure["panels"]![0]!["series"]![0]!["y"]!.AsArray().Select(v => v!.GetValue<double>()));
    }
}
