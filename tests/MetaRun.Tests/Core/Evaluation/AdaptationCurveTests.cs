using System.Text.Json.Nodes;
using MetaRun.Data;
using MetaRun.Evaluation;
using MetaRun.Reports;
using MetaRun.Tests.Cli;
using MetaRun.Training;

namespace MetaRun.Tests.Evaluation;

[Collection(ProcessWideCollection.Name)]
public class AdaptationCurveTests
{
    private static string Train(string algorithm)
    {
        var dir = TestPaths.NewTempDir("curve");
        var config = Path.Combine(dir, "c.yaml");
        File.WriteAllText(config, TestConfigs.TinySinusoid.Replace("name: maml", $"name: {algorithm}"));
        var run = Path.Combine(dir, "run");
        using var r = TrainingRun.Start(new TrainingRequest(config, ["algorithm.iterations=3", "algorithm.inner_lr=0.01", "threads=1"], run, null, null, false), _ => { });
        r.Train(null, default);
        return run;
    }

    [Fact]
    public void TheCurveAtTheTrainedStepCountIsTheEvaluationEvalGivesOnTheSameEpisodes()
    {
        var run = Train("maml");
        var curve = AdaptationCurve.Run(run, Split.Test, 6, AdaptationCurve.ParseSteps("0..3"), [], null);
        Assert.Equal([0, 1, 2, 3], curve.Select(c => c.InnerSteps));
        var eval = Evaluator.Run(run, Split.Test, 6, [], null);
        Assert.Equal(1, eval.InnerSteps);
        Assert.Equal(eval.Summary.Mean, curve[1].Summary.Mean, 12);
        // Adapting changes the score: 0 steps is the meta-learned initialisation itself.
        Assert.NotEqual(curve[0].Summary.Mean, curve[1].Summary.Mean);

        foreach (var c in curve) EvaluationStore.TrySave(c, null);
        var figure = Figures.StepsFigure([RunFolder.Read(run)]);
        Assert.NotNull(figure);
        var series = figure!["panels"]![0]!["series"]![0]!;
        Assert.Equal([0.0, 1, 2, 3], series["x"]!.AsArray().Select(x => x!.GetValue<double>()));
        // The store keeps six decimals.
        Assert.Equal(curve[3].Summary.Mean, series["y"]![3]!.GetValue<double>(), 6);
    }

    [Fact]
    public void TheFitsFigureDrawsTruthSupportAndEachShownStepCountPerTask()
    {
        var run = Train("pretrained");
        var path = AdaptationCurve.WriteFits(run, run, AdaptationCurve.ParseSteps("0..10"), [], null);
        var figure = JsonNode.Parse(File.ReadAllText(path!))!;
        var panels = figure["panels"]!.AsArray();
        Assert.Equal(AdaptationCurve.FitTasks, panels.Count);
        var labels = panels[0]!["series"]!.AsArray().Select(s => s!["label"]!.GetValue<string>()).ToList();
        Assert.Equal(["ground truth", "support points", "before adaptation", "after 1 step", "after 10 steps"], labels);
        var truth = panels[0]!["series"]![0]!;
        Assert.Equal(AdaptationCurve.FitPoints, truth["x"]!.AsArray().Count);
        var xs = truth["x"]!.AsArray().Select(x => x!.GetValue<double>()).ToList();
        Assert.Equal(xs.Order(), xs);
        // The report picks it up.
        Assert.Single(Figures.RunFigures([RunFolder.Read(run)]));
    }

    [Fact]
    public void EvalWithInnerStepsPrintsARowPerCountKeepsThemAndRefusesWhatItCannotWrite()
    {
        var run = Train("maml");
        var (code, stdout, err) = CliRunner.Run("eval", run, "--inner-steps", "0..2", "--episodes", "3");
        Assert.True(code == 0, err);
        var rows = stdout.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s+[0-9]+\s+[0-9.]+\s+[0-9.]+$")).ToList();
        Assert.Equal(3, rows.Count);
        Assert.Equal([0, 1, 2], RunFolder.Read(run).Evaluations.Select(e => e.InnerSteps).Order());
        // Sinusoid is regression: the fits figure is written too.
        Assert.True(File.Exists(Path.Combine(run, Figures.Folder, Figures.FitsFile)));
        // report draws both, and with --png writes them as images.
        var pngs = Path.Combine(run, "png");
        (code, stdout, err) = CliRunner.Run("report", run, "--out", Path.Combine(run, "report.html"), "--png", pngs);
        Assert.True(code == 0, err);
        var html = File.ReadAllText(Path.Combine(run, "report.html"));
        Assert.Contains("\"id\":\"steps\"", html);
        Assert.Contains("\"id\":\"fits-run\"", html);
        foreach (var (file, width, height) in new[] { ("steps.png", 900, 560), ("fits.png", AdaptationCurve.FitTasks * 480, 440) })
        {
            using var image = SkiaSharp.SKBitmap.Decode(Path.Combine(pngs, file));
            Assert.Equal((width, height), (image.Width, image.Height));
            var colours = Enumerable.Range(0, 4000).Select(i => image.GetPixel(i * 7 % image.Width, i * 13 % image.Height)).Distinct().Count();
            Assert.True(colours > 10, $"{file} looks blank");
        }

        foreach (var extra in new[] { new[] { "--out", Path.Combine(run, "x.json") }, ["--attack", "fgsm", "--epsilon", "0.1"] })
        {
            (code, _, err) = CliRunner.Run(["eval", run, "--inner-steps", "0..2", .. extra]);
            Assert.Equal(ExitCodes.BadUsage, code);
            Assert.Contains("--inner-steps", err);
            Assert.Single(err.Trim().Split('\n'));
        }
        (code, _, err) = CliRunner.Run("eval", run, "--inner-steps", "3..1");
        Assert.Equal(ExitCodes.BadUsage, code);
        Assert.Contains("--inner-steps 3..1", err);
    }

    [Theory]
    [InlineData("0..10", new[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 })]
    [InlineData("10,0,5,1", new[] { 0, 1, 5, 10 })]
    public void StepListsParseAsRangesOrLists(string text, int[] expected) => Assert.Equal(expected, AdaptationCurve.ParseSteps(text));

    [Theory]
    [InlineData("3..1")]
    [InlineData("a")]
    [InlineData("-1,2")]
    public void AStepListThatIsNeitherARangeNorAListIsAConfigError(string text) =>
        Assert.Contains("--inner-steps", Assert.Throws<ConfigException>(() => AdaptationCurve.ParseSteps(text)).Message);
}
