using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using MetaRun.Reports;
using MetaRun.Sweeps;
using MetaRun.Tests.Sweeps;

namespace MetaRun.Tests.Reports;

/// <summary>A small real Omniglot sweep (2 inner learning rates × 2 seeds, a few iterations) that compare and report read.</summary>
public sealed class OmniglotSweepFixture
{
    public string Dir { get; } = TestPaths.NewTempDir("report");
    public string Folder => Path.Combine(Dir, "lr");

    public OmniglotSweepFixture()
    {
        var file = Path.Combine(Dir, "lr.yaml");
        File.WriteAllText(file, $"""
            name: lr
            config: {Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s-cpu.yaml")}
            out: {Folder}
            set: [algorithm.iterations=6, algorithm.meta_batch_size=2, eval.interval=2, eval.episodes=5, checkpoint.interval=2, model.filters=8]
            grid:
              algorithm.inner_lr: [0.4, 0.1]
            seeds: [1, 2]
            eval: {"{"}split: test, episodes: 10{"}"}
            """);
        var (code, output) = SweepTestSupport.RunToEnd(Dir, TimeSpan.FromMinutes(5), "--data-root", TestPaths.SharedDatasets, "sweep", file, "--parallel", "2");
        if (code != 0) throw new InvalidOperationException("the fixture sweep failed:\n" + output);
    }
}

[Collection(SweepCollection.Name)]
public sealed class ReportTests(OmniglotSweepFixture sweep) : IClassFixture<OmniglotSweepFixture>
{
    private static double EvalMean(string runDir) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(runDir, "checkpoints", "eval.json"))).RootElement.GetProperty("mean").GetDouble();

    [Fact]
    public void CompareGroupsSeedsIntoOneRowWithTheirMeanSpreadAndCount()
    {
        var (code, csv) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(1), "compare", sweep.Folder, "--format", "csv");
        Assert.True(code == 0, csv);
        var lines = csv.Trim().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal("runs,algorithm.inner_lr,best val accuracy,test accuracy,±95% CI,seed sd,seeds,test NLL,test ECE,test Brier", lines[0]);
        Assert.Equal(3, lines.Count);
        var manifest = SweepManifest.Read(sweep.Folder)!;
        foreach (var lr in new[] { "0.4", "0.1" })
        {
            var row = lines.Select(l => l.Split(',')).Single(r => r[1] == lr);
            var runs = manifest.Runs.Where(r => r.Varying["algorithm.inner_lr"] == lr).ToList();
            // The first column names the row's run folders, one per seed.
            Assert.Equal(runs.Select(r => Path.GetFileName(r.Dir)).Order(), row[0].Split(' ').Order());
            var means = runs.Select(r => EvalMean(r.Dir)).ToList();
            Assert.Equal(2, means.Count);
            Assert.Equal(means.Average(), double.Parse(row[3], CultureInfo.InvariantCulture), 4);
            var sd = Math.Sqrt(means.Sum(m => (m - means.Average()) * (m - means.Average())) / (means.Count - 1));
            Assert.Equal(sd, double.Parse(row[5], CultureInfo.InvariantCulture), 4);
            Assert.Equal("2", row[6]);
        }

        var (_, json) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(1), "compare", sweep.Folder, "--format", "json");
        var doc = JsonDocument.Parse(json).RootElement;
        Assert.Equal("accuracy", doc.GetProperty("metric").GetString());
        Assert.Equal(2, doc.GetProperty("rows").GetArrayLength());
        var (_, md) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(1), "compare", sweep.Folder, "--format", "markdown");
        Assert.StartsWith("| runs | algorithm.inner_lr | best val accuracy |", md);
        var (_, table) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(1), "compare", Path.Combine(sweep.Folder, manifest.Runs[0].Name));
        Assert.Contains(EvalMean(manifest.Runs[0].Dir).ToString("0.0000", CultureInfo.InvariantCulture), table);

        var (bad, err) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(1), "compare", Path.Combine(sweep.Dir, "nothing-here"));
        Assert.Equal(ExitCodes.BadUsage, bad);
        Assert.Contains("nothing-here: no such folder", err);
    }

    [Fact]
    public void TrainWritesCurvesPngIntoItsRunFolder()
    {
        foreach (var r in SweepManifest.Read(sweep.Folder)!.Runs)
        {
            var path = Path.Combine(r.Dir, "curves.png");
            Assert.True(File.Exists(path), $"train wrote no {path}");
            using var image = SkiaSharp.SKBitmap.Decode(path);
            Assert.NotNull(image);
            // Three panels in a row (loss, accuracy, seconds per step); no panel for the constant learning rate.
            Assert.Equal((3 * Plots.CurvesPanelWidth, Plots.CurvesPanelHeight), (image.Width, image.Height));
            var colours = Enumerable.Range(0, 2000).Select(i => image.GetPixel(i * 7 % image.Width, i * 13 % image.Height)).Distinct().Count();
            Assert.True(colours > 10, $"{path} looks blank ({colours} colours sampled)");
        }
    }

    /// <summary>
    /// The real sweep's report in headless Chromium with the network refused: no console
    /// messages, every curve chart drawn, seeds grouped (2 settings), hovering shows values,
    /// toggling a setting redraws every chart, the table sorts; a broken copy fails the same checks.
    /// </summary>
    [SkippableFact]
    public void TheReportDrawsItsChartsOfflineInChromiumAndAnswersHoverToggleAndSort()
    {
        var chromium = ChromiumPage.Require();
        var report = Path.Combine(sweep.Dir, "report.html");
        var (code, output) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(2), "report", sweep.Folder, "--out", report);
        Assert.True(code == 0, output);
        Assert.Empty(ChromiumPage.ConsoleMessages(chromium, report));
        var probe = ChromiumPage.Interact(chromium, report);
        Assert.True(probe.GetProperty("errors").GetArrayLength() == 0, probe.ToString());
        Assert.True(probe.GetProperty("ready").GetBoolean());
        Assert.Equal(0, probe.GetProperty("resources").GetArrayLength());
        string[] charts = ["chart-accuracy-train-loss", "chart-accuracy-train-accuracy", "chart-accuracy-validation", "chart-accuracy-validation-loss", "chart-accuracy-seconds"];
        Assert.Equal(charts, probe.GetProperty("charts").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(2, probe.GetProperty("resultRows").GetInt32());
        Assert.Equal(1, probe.GetProperty("bestRows").GetInt32());
        Assert.Equal(1, probe.GetProperty("keyPanels").GetInt32());
        Assert.Equal(1, probe.GetProperty("diffTables").GetInt32());
        Assert.Contains("iteration", probe.GetProperty("tooltip").GetString());
        Assert.Equal(charts.Length, probe.GetProperty("toggleChanged").GetInt32());
        Assert.Equal(charts.Length, probe.GetProperty("toggleRestored").GetInt32());
        Assert.NotEqual(probe.GetProperty("sortAsc").GetString(), probe.GetProperty("sortDesc").GetString());

        var shot = ChromiumPage.Screenshot(chromium, report, Path.Combine(sweep.Dir, "report.png"), 1400, 2400);
        Assert.True(ChromiumPage.Colours(shot) > 20, "the screenshot looks blank");

        // The checks can fail: a script error in the page, and a report whose data does not parse.
        var html = File.ReadAllText(report);
        var broken = Path.Combine(sweep.Dir, "broken.html");
        File.WriteAllText(broken, html.Replace("</body>", "<script>notDefinedAnywhere();</script></body>"));
        Assert.Contains(ChromiumPage.ConsoleMessages(chromium, broken), e => e.Contains("notDefinedAnywhere"));
        var noData = Path.Combine(sweep.Dir, "nodata.html");
        File.WriteAllText(noData, html.Replace("id=\"report-data\">{", "id=\"report-data\">{,"));
        Assert.NotEmpty(ChromiumPage.ConsoleMessages(chromium, noData));
    }
}

/// <summary>compare and report on run folders written by hand: no training, so no fixture.</summary>
public sealed class RegressionReportTests
{
    [Fact]
    public void ALinearRegressionRunShowsItsBestValidationLossAndDrawsItsValidationCurve()
    {
        var dir = TestPaths.NewTempDir("linear-run");
        File.WriteAllText(Path.Combine(dir, "config.yaml"), "name: linear\ndata: {dataset: linear}\n");
        File.WriteAllText(Path.Combine(dir, "metrics.csv"),
            "iteration,train_loss,train_accuracy,val_loss,val_accuracy,val_ci95,seconds\n1,2.0,,1.5,,0.2,0.1\n2,1.0,,0.5,,0.1,0.1\n");
        var run = RunFolder.Read(dir);
        Assert.Equal(0.5, run.BestValidation);
        var comparison = Comparison.Of([run]);
        Assert.Contains("best val loss", comparison.Headers);
        Assert.Equal("0.5000", comparison.Cells()[0][comparison.LabelColumns]);
        // The first column names the row's run folders.
        Assert.Equal("runs", comparison.Headers[0]);
        Assert.Equal(Path.GetFileName(dir), comparison.Cells()[0][0]);
        // Train and validation MSE share one panel; a constant learning rate gets none.
        Assert.Equal(["loss", "seconds"], Plots.Curves([run]).Select(p => p.Id));
    }
}
