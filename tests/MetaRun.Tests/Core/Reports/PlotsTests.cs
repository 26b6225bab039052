using MetaRun.Reports;
using MetaRun.Training;

namespace MetaRun.Tests.Reports;

/// <summary>curves.png: which panels it draws, what each holds, and its redraw from rows held in memory.</summary>
public sealed class PlotsTests
{
    private static string[] Labels(NamedPlot p) => [.. p.Plot.GetPlottables().SelectMany(x => x.LegendItems).Select(i => i.LabelText).Where(l => l.Length > 0)];

    [Fact]
    public void TrainAndValidationShareTheLossAndAccuracyPanelsAndAConstantRateGetsNoPanel()
    {
        var run = RunFolder.Read(HtmlReportTests.WriteRuns(TestPaths.NewTempDir("plots"), 1, 1)[0]);
        var plots = Plots.Curves([run]);
        Assert.Equal(["loss", "accuracy", "seconds"], plots.Select(p => p.Id));
        Assert.Equal(["train (moving average of 6)", "validation"], Labels(plots[0]));
        Assert.Equal(["train (moving average of 6)", "validation (95% CI)"], Labels(plots[1]));
        Assert.Equal(["without validation and checkpoints"], Labels(plots[2]));
    }

    [Fact]
    public void AScheduledOuterRateGetsItsPanel()
    {
        var dir = HtmlReportTests.WriteRuns(TestPaths.NewTempDir("plots"), 1, 1)[0];
        var config = Path.Combine(dir, "config.yaml");
        File.WriteAllText(config, File.ReadAllText(config).Replace("iterations: 300", "iterations: 300, outer_lr_schedule: cosine"));
        var plots = Plots.Curves([RunFolder.Read(dir)]);
        Assert.Equal(["loss", "accuracy", "learning-rate", "seconds"], plots.Select(p => p.Id));
    }

    [Fact]
    public void WithSeveralRunsEachSeriesIsNamedByItsRun()
    {
        var runs = HtmlReportTests.WriteRuns(TestPaths.NewTempDir("plots"), 2, 1).Select(RunFolder.Read).ToList();
        var loss = Plots.Curves(runs)[0];
        Assert.Equal(4, Labels(loss).Length);
        Assert.All(runs, r => Assert.Contains($"{r.Name} validation", Labels(loss)));
    }

    [Fact]
    public void TheTrainersRedrawFromRowsInMemoryEqualsTheDrawingFromTheFinishedMetricsFile()
    {
        var dir = HtmlReportTests.WriteRuns(TestPaths.NewTempDir("plots"), 1, 1)[0];
        var metrics = Path.Combine(dir, "metrics.csv");
        var lines = File.ReadAllLines(metrics);
        var all = RunFolder.Read(dir).Metrics;
        // The trainer starts with the first 100 rows on disk and hands the writer each later row.
        File.WriteAllLines(metrics, lines[..101]);
        var writer = new Plots.CurvesWriter(RunDirectory.At(dir), Serilog.Core.Logger.None);
        File.Delete(metrics);
        foreach (var row in all.Skip(100)) writer.Add(row);
        writer.Write();
        var redrawn = File.ReadAllBytes(Path.Combine(dir, "curves.png"));

        File.WriteAllLines(metrics, lines);
        var fromFile = Plots.WriteCurves(RunFolder.Read(dir), Path.Combine(dir, "from-file.png"));
        Assert.Equal(File.ReadAllBytes(fromFile), redrawn);
        using var image = SkiaSharp.SKBitmap.Decode(fromFile);
        Assert.Equal((3 * Plots.CurvesPanelWidth, Plots.CurvesPanelHeight), (image.Width, image.Height));
    }
}
