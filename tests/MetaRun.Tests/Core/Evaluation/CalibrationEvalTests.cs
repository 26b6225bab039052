using System.Text.Json;
using MetaRun.Evaluation;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Evaluation;

/// <summary>`eval` on real Omniglot reports calibration and, with --ood, the out-of-episode AUROC; the store keeps them; compare and report show them.</summary>
[Collection(ProcessWideCollection.Name)]
public class CalibrationEvalTests
{
    private static string Trained(string dir)
    {
        var run = Path.Combine(dir, "run");
        var args = new List<string> { "train", Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml"), "--out", run, "--data-root", TestPaths.SharedDatasets };
        foreach (var s in new[] { "data.split=lake", "algorithm.iterations=3", "algorithm.meta_batch_size=2", "model.filters=8", "eval.interval=0",
                     "data.train.queries=2", "data.test.queries=3", "algorithm.test_inner_steps=1", "threads=1" })
            args.AddRange(["--set", s]);
        var (code, _, err) = CliRunner.Run([.. args]);
        Assert.True(code == 0, err);
        return run;
    }

    private static JsonElement Eval(string run, string outFile, params string[] extra)
    {
        var (code, stdout, err) = CliRunner.Run(["eval", run, "--episodes", "12", "--out", outFile, "--data-root", TestPaths.SharedDatasets, .. extra]);
        Assert.True(code == 0, err);
        Assert.Contains("calibration: NLL", stdout);
        return JsonDocument.Parse(File.ReadAllText(outFile)).RootElement.Clone();
    }

    [Fact]
    public void Eval_reports_calibration_and_ood_auroc_the_store_keeps_them_and_compare_and_report_show_them()
    {
        var dir = TestPaths.NewTempDir("calibration-eval");
        var run = Trained(dir);
        var plain = Eval(run, Path.Combine(dir, "plain.json"));
        var ood = Eval(run, Path.Combine(dir, "ood.json"), "--ood");
        var again = Eval(run, Path.Combine(dir, "again.json"), "--ood");

        // A MAML run evaluates batched by default; one task at a time gives the same figures.
        var perTask = Eval(run, Path.Combine(dir, "per-task.json"), "--set", "execution=per_task");
        Assert.Equal(perTask.GetProperty("mean").GetDouble(), plain.GetProperty("mean").GetDouble(), 12);
        Assert.Equal(perTask.GetProperty("calibration").GetProperty("nll").GetDouble(), plain.GetProperty("calibration").GetProperty("nll").GetDouble(), 5);

        // --ood adds to the same episodes' result; it does not change it.
        Assert.Equal(plain.GetProperty("mean").GetDouble(), ood.GetProperty("mean").GetDouble());
        Assert.Equal(plain.GetProperty("calibration").GetProperty("nll").GetDouble(), ood.GetProperty("calibration").GetProperty("nll").GetDouble());
        var c = ood.GetProperty("calibration");
        Assert.InRange(c.GetProperty("ece").GetDouble(), 0, 1);
        Assert.InRange(c.GetProperty("brier").GetDouble(), 0, 2);
        Assert.True(c.GetProperty("nll").GetDouble() > 0);
        var reliability = c.GetProperty("reliability");
        Assert.Equal(Calibration.Bins, reliability.GetArrayLength());
        Assert.Equal(12 * 5 * 3, reliability.EnumerateArray().Sum(b => b.GetProperty("count").GetInt32()));

        // The OOD episodes are a function of seed and index: the same figures every time.
        var o = ood.GetProperty("ood");
        Assert.Equal(o.GetRawText(), again.GetProperty("ood").GetRawText());
        Assert.Equal(12 * 5 * 3, o.GetProperty("out_queries").GetInt32());
        Assert.InRange(o.GetProperty("auroc_entropy").GetDouble(), 0, 1);
        Assert.InRange(o.GetProperty("auroc_max_probability").GetDouble(), 0, 1);

        // A later plain eval of the same episodes replaces the plain record only: --ood's figures keep their own.
        Eval(run, Path.Combine(dir, "plain-again.json"));
        var records = EvaluationStore.Read(run).Where(e => e.Episodes == 12).ToList();
        Assert.Equal(2, records.Count);
        var stored = records.Single(e => e.Variant == null);
        Assert.Null(stored.OodAurocEntropy);
        Assert.Equal(c.GetProperty("ece").GetDouble(), stored.Ece);
        Assert.NotNull(stored.Reliability);
        var oodRecord = records.Single(e => e.Variant == EvaluationStore.OodVariant);
        Assert.Equal(o.GetProperty("auroc_entropy").GetDouble(), oodRecord.OodAurocEntropy);
        Assert.Equal(stored.Mean, oodRecord.Mean);

        var (code, csv, err) = CliRunner.Run("compare", run, "--format", "csv");
        Assert.True(code == 0, err);
        var header = csv.Split('\n')[0].TrimEnd('\r');
        Assert.EndsWith("test NLL,test ECE,test Brier,OOD AUROC (entropy),OOD AUROC (max probability)", header);
        // No column of its own for the OOD record's in-episode accuracy: it is the headline's.
        Assert.DoesNotContain("ood", header);
        var cells = csv.Split('\n')[1].TrimEnd('\r').Split(',');
        Assert.Equal(o.GetProperty("auroc_entropy").GetDouble(), double.Parse(cells[^2], System.Globalization.CultureInfo.InvariantCulture), 4);
        var html = Path.Combine(dir, "report.html");
        (code, _, err) = CliRunner.Run("report", run, "--out", html);
        Assert.True(code == 0, err);
        // The run's reliability histogram goes into the page for its diagram (drawn in Chromium by HtmlReportTests).
        Assert.Contains("\"reliability\":{\"ece\":", File.ReadAllText(html));
    }

    [Fact]
    public void Ood_on_regression_is_refused_naming_the_option()
    {
        var dir = TestPaths.NewTempDir("calibration-ood-regression");
        var config = Path.Combine(dir, "s.yaml");
        File.WriteAllText(config, """
            name: s
            threads: 1
            data: {dataset: sinusoid, train: {shots: 5, queries: 5}, test: {shots: 5, queries: 5}}
            algorithm: {name: maml, inner_lr: 0.01, meta_batch_size: 2, iterations: 2}
            eval: {interval: 0}
            """);
        var (code, _, err) = CliRunner.Run("train", config, "--out", Path.Combine(dir, "run"));
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("eval", Path.Combine(dir, "run"), "--episodes", "2", "--ood");
        Assert.Equal(2, code);
        Assert.Contains("--ood", err);
    }
}
