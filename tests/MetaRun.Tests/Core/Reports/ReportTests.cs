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
        Assert.Equal("algorithm.inner_lr,best val accuracy,test accuracy,±95% CI,seed sd,seeds,test NLL,test ECE,test Brier", lines[0]);
        Assert.Equal(3, lines.Count);
        var manifest = SweepManifest.Read(sweep.Folder)!;
        foreach (var lr in new[] { "0.4", "0.1" })
        {
            var row = lines.Single(l => l.StartsWith(lr + ",", StringComparison.Ordinal)).Split(',');
            var means = manifest.Runs.Where(r => r.Varying["algorithm.inner_lr"] == lr).Select(r => EvalMean(r.Dir)).ToList();
            Assert.Equal(2, means.Count);
            Assert.Equal(means.Average(), double.Parse(row[2], CultureInfo.InvariantCulture), 4);
            var sd = Math.Sqrt(means.Sum(m => (m - means.Average()) * (m - means.Average())) / (means.Count - 1));
            Assert.Equal(sd, double.Parse(row[4], CultureInfo.InvariantCulture), 4);
            Assert.Equal("2", row[5]);
        }

        var (_, json) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(1), "compare", sweep.Folder, "--format", "json");
        var doc = JsonDocument.Parse(json).RootElement;
        Assert.Equal("accuracy", doc.GetProperty("metric").GetString());
        Assert.Equal(2, doc.GetProperty("rows").GetArrayLength());
        var (_, md) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(1), "compare", sweep.Folder, "--format", "markdown");
        Assert.StartsWith("| algorithm.inner_lr | best val accuracy |", md);
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
            // Five panels (train loss and accuracy, validation, learning rate, seconds per iteration) in a 3 × 2 grid.
            Assert.Equal((1500, 700), (image.Width, image.Height));
            var colours = Enumerable.Range(0, 2000).Select(i => image.GetPixel(i * 7 % image.Width, i * 13 % image.Height)).Distinct().Count();
            Assert.True(colours > 10, $"{path} looks blank ({colours} colours sampled)");
        }
    }

    /// <summary>
    /// Opens the report in headless Chromium: no console messages at all (the page has no
    /// script of its own), every plot decoded with real content, and a screenshot kept in
    /// test-artifacts/. Broken copies of the report must fail the same checks.
    /// </summary>
    [SkippableFact]
    public void TheReportOpensInChromiumWithEveryPlotAndNoConsoleErrors()
    {
        var chromium = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);
        if (chromium == null)
        {
            Skip.IfNot(Environment.UserName == "root", "chromium is not installed; scripts/setup.sh installs it when run as root");
            Assert.Fail("chromium is not installed; run scripts/setup.sh (as root) first");
        }

        var report = Path.Combine(sweep.Dir, "report.html");
        var (code, output) = SweepTestSupport.RunToEnd(sweep.Dir, TimeSpan.FromMinutes(2), "report", sweep.Folder, "--out", report);
        Assert.True(code == 0, output);
        var html = File.ReadAllText(report);
        Assert.DoesNotContain("http://", html);
        Assert.DoesNotContain("https://", html);
        string[] plots = ["plot-test", "plot-train-loss", "plot-train-accuracy", "plot-validation", "plot-learning-rate", "plot-seconds"];
        foreach (var id in plots) Assert.Contains($"id=\"{id}\"", html);

        var (errors, seen) = Check(chromium!, report);
        Assert.Empty(errors);
        Assert.Equal(plots.Order(), seen.Keys.Order());
        foreach (var (id, (w, h, colours)) in seen)
        {
            Assert.True(w > 0 && h > 0, $"{id} did not decode ({w}×{h})");
            Assert.True(colours >= 3, $"{id} is blank ({colours} distinct colours sampled)");
        }

        var artifacts = Path.Combine(TestPaths.RepoRoot, "test-artifacts");
        Directory.CreateDirectory(artifacts);
        var shot = Path.Combine(artifacts, "report.png");
        File.Delete(shot);
        Chromium(chromium!, report, "--window-size=1100,3200", $"--screenshot={shot}");
        Assert.True(File.Exists(shot) && new FileInfo(shot).Length > 50_000, "no screenshot");

        // The checks can fail: a plot with broken data and a page script error are both caught.
        var broken = Path.Combine(sweep.Dir, "broken.html");
        File.WriteAllText(broken, Regex.Replace(html, "(id=\"plot-validation\"[^>]*src=\"data:image/png;base64,)[A-Za-z0-9+/]{200}", "$1AAAA")
            .Replace("</body>", "<script>notDefinedAnywhere();</script></body>"));
        var (brokenErrors, brokenSeen) = Check(chromium!, broken);
        Assert.Contains(brokenErrors, e => e.Contains("notDefinedAnywhere"));
        Assert.Equal(0, brokenSeen["plot-validation"].Width);
    }

    // Console messages from the report as it is, and each plot's decoded size and sampled
    // colour count from a copy with a probe script in front of everything else.
    private static (List<string> Errors, Dictionary<string, (int Width, int Height, int Colours)> Plots) Check(string chromium, string page)
    {
        var (_, log) = Chromium(chromium, page, "--enable-logging=stderr", "--v=0", "--dump-dom");
        var errors = log.Split('\n').Where(l => l.Contains(":CONSOLE")).ToList();

        const string probe = """
            <script>
            window.addEventListener('load', () => {
              const out = [...document.querySelectorAll('img.plot')].map(img => {
                const c = document.createElement('canvas');
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                const colours = new Set();
                if (c.width > 0) {
                  const ctx = c.getContext('2d');
                  ctx.drawImage(img, 0, 0);
                  const d = ctx.getImageData(0, 0, c.width, c.height).data;
                  for (let i = 0; i < d.length; i += 4 * 101) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
                }
                return [img.id, img.naturalWidth, img.naturalHeight, colours.size];
              });
              document.body.setAttribute('data-probe', JSON.stringify(out));
            });
            </script>
            """;
        var probed = page + ".probe.html";
        File.WriteAllText(probed, File.ReadAllText(page).Replace("<head>", "<head>" + probe));
        var (dom, _) = Chromium(chromium, probed, "--dump-dom");
        var match = Regex.Match(dom, "data-probe=\"([^\"]*)\"");
        Assert.True(match.Success, "the probe found no result in the page:\n" + dom[..Math.Min(dom.Length, 500)]);
        var rows = JsonDocument.Parse(System.Net.WebUtility.HtmlDecode(match.Groups[1].Value)).RootElement;
        var plots = rows.EnumerateArray().ToDictionary(r => r[0].GetString()!, r => (r[1].GetInt32(), r[2].GetInt32(), r[3].GetInt32()));
        return (errors, plots);
    }

    private static (string Out, string Err) Chromium(string chromium, string page, params string[] extra)
    {
        var info = new ProcessStartInfo(chromium) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--virtual-time-budget=5000" }.Concat(extra))
            info.ArgumentList.Add(a);
        info.ArgumentList.Add(new Uri(page).AbsoluteUri);
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(1)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("chromium did not finish in a minute");
        }
        return (stdout.Result, stderr.Result);
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
        Assert.Equal("0.5000", comparison.Cells()[0][comparison.Keys.Count]);
        Assert.Contains(Plots.Curves([run]), p => p.Id == "validation");
    }
}
