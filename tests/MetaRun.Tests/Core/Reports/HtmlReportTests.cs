using System.Globalization;
using System.Text;
using MetaRun.Reports;

namespace MetaRun.Tests.Reports;

/// <summary>
/// The interactive report over run folders written by hand (no training): settings × seeds with
/// curves and stored evaluations, so its layout is checked with few and with many runs.
/// </summary>
public sealed class HtmlReportTests
{
    /// <summary>Writes settings × seeds classification runs (inner rates 0.1, 0.2, …) with 300 iterations and a test evaluation each.</summary>
    public static IReadOnlyList<string> WriteRuns(string dir, int settings, int seeds, bool attacked = false)
    {
        var inv = CultureInfo.InvariantCulture;
        var dirs = new List<string>();
        for (var s = 0; s < settings; s++)
            for (var seed = 1; seed <= seeds; seed++)
            {
                var lr = (0.1 * (s + 1)).ToString("0.0##", inv);
                var run = Path.Combine(dir, $"algorithm.inner_lr={lr}_with_a_long_descriptive_suffix_seed={seed}");
                Directory.CreateDirectory(Path.Combine(run, "evaluations"));
                File.WriteAllText(Path.Combine(run, "config.yaml"), $"name: r\nseed: {seed}\ndata: {{dataset: omniglot}}\nalgorithm: {{inner_lr: {lr}, iterations: 300}}\neval: {{interval: 50}}\ncheckpoint: {{interval: 100}}\n");
                var csv = new StringBuilder("iteration,train_loss,train_accuracy,val_loss,val_accuracy,val_ci95,seconds\n");
                var rng = new Random(s * 100 + seed);
                double Target(int it) => 0.5 + 0.4 * (1 - Math.Exp(-it / (60.0 + 20 * s))) + 0.01 * seed;
                for (var it = 1; it <= 300; it++)
                {
                    var acc = Math.Clamp(Target(it) + 0.05 * (rng.NextDouble() - 0.5), 0, 1);
                    var val = it % 50 == 0 ? $"{(1.6 - Target(it)).ToString("R", inv)},{Target(it).ToString("R", inv)},0.02" : ",,";
                    csv.Append(inv, $"{it},{(1.7 - acc).ToString("R", inv)},{acc.ToString("R", inv)},{val},{(it * 0.05 + (it - 1) / 50).ToString("0.###", inv)}\n");
                }
                File.WriteAllText(Path.Combine(run, "metrics.csv"), csv.ToString());
                var test = (Target(300) - 0.02).ToString("R", inv);
                File.WriteAllText(Path.Combine(run, "evaluations", "test-best.json"),
                    $"{{\"metric\":\"accuracy\",\"mean\":{test},\"ci95\":0.01,\"episodes\":600,\"split\":\"test\",\"ways\":5,\"shots\":1,\"queries\":15,\"inner_steps\":1,\"inner_lr\":{lr},\"iteration\":300,\"checkpoint\":\"{run}/checkpoints/best.safetensors\",\"seed\":{seed},\"checkpoint_name\":\"best\",\"recorded\":\"2026-01-01T00:00:00Z\",{CalibrationJson(s, seed)}}}");
                // eval --ood's own record of the same episodes.
                File.WriteAllText(Path.Combine(run, "evaluations", "test-best-ood.json"),
                    $"{{\"metric\":\"accuracy\",\"mean\":{test},\"ci95\":0.01,\"episodes\":600,\"split\":\"test\",\"ways\":5,\"shots\":1,\"queries\":15,\"inner_steps\":1,\"inner_lr\":{lr},\"iteration\":300,\"checkpoint\":\"{run}/checkpoints/best.safetensors\",\"seed\":{seed},\"checkpoint_name\":\"best\",\"recorded\":\"2026-01-01T00:00:02Z\",\"variant\":\"ood\",{CalibrationJson(s, seed)},\"ood\":{{\"auroc_entropy\":{(0.7 + 0.01 * s).ToString("R", inv)},\"auroc_max_probability\":0.68}}}}");
                if (attacked)
                    File.WriteAllText(Path.Combine(run, "evaluations", "test-best-fgsm.json"),
                        $"{{\"metric\":\"accuracy\",\"mean\":{test},\"ci95\":0.01,\"episodes\":600,\"split\":\"test\",\"ways\":5,\"shots\":1,\"queries\":15,\"inner_steps\":1,\"inner_lr\":{lr},\"iteration\":300,\"checkpoint\":\"{run}/checkpoints/best.safetensors\",\"seed\":{seed},\"checkpoint_name\":\"best\",\"recorded\":\"2026-01-01T00:00:01Z\",\"attack\":{{\"kind\":\"fgsm\",\"epsilon\":0.1,\"steps\":1,\"mean\":{(Target(300) - 0.3).ToString("R", inv)},\"ci95\":0.02}}}}");
                dirs.Add(run);
            }
        return dirs;
    }

    /// <summary>A calibration block as eval writes it: 9000 queries over 15 bins, over-confident by 0.05 per occupied bin.</summary>
    public static string CalibrationJson(int setting, int seed)
    {
        var inv = CultureInfo.InvariantCulture;
        var bins = Enumerable.Range(0, 15).Select(b =>
        {
            var count = b < 4 ? 0 : 100 * (b - 3) + 10 * seed;
            var confidence = (b + 0.5) / 15;
            return count == 0 ? $"{{\"count\":0,\"confidence\":null,\"accuracy\":null}}"
                : $"{{\"count\":{count},\"confidence\":{confidence.ToString("R", inv)},\"accuracy\":{(confidence - 0.05).ToString("R", inv)}}}";
        });
        return $"\"calibration\":{{\"nll\":{(0.5 + 0.1 * setting).ToString("R", inv)},\"ece\":0.05,\"brier\":0.3,\"reliability\":[{string.Join(",", bins)}]}}";
    }

    [Fact]
    public void SeedsOfASettingShareOneGroupAndTheSweptKeyAndAttackGetTheirSections()
    {
        var dir = TestPaths.NewTempDir("htmlreport");
        WriteRuns(dir, 3, 2, attacked: true);
        var runs = RunFolder.Discover([dir]);
        var data = ReportData.Build(runs, Comparison.PerMetric(runs));
        var section = data["sections"]![0]!;
        Assert.Equal(["algorithm.inner_lr"], section["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        Assert.Equal(3, section["groups"]!.AsArray().Count);
        Assert.All(section["groups"]!.AsArray(), g => Assert.Equal(2, g!["runs"]!.AsArray().Count));
        Assert.Equal(["test", "val", "fgsm ε=0.1", "test NLL", "test ECE", "test Brier", "OOD AUROC (entropy)", "OOD AUROC (max probability)"],
            section["columns"]!.AsArray().Select(c => c!["id"]!.GetValue<string>()));
        // The calibration columns hold each seed's figure; the OOD ones come from eval --ood's own record.
        var nll = section["columns"]![3]!;
        Assert.Equal("calibration", nll["kind"]!.GetValue<string>());
        Assert.Equal([0.6, 0.6], nll["values"]![1]!.AsArray().Select(v => v!.GetValue<double>()));
        Assert.Equal([0.71, 0.71], section["columns"]![6]!["values"]![1]!.AsArray().Select(v => v!.GetValue<double>()));
        // Each run carries its headline's reliability histogram for its diagram.
        var bins = data["runs"]![0]!["reliability"]!["bins"]!.AsArray();
        Assert.Equal(15, bins.Count);
        Assert.Equal(110, bins[4]!["count"]!.GetValue<long>());
        Assert.Null(bins[0]!["accuracy"]);
        // The attacked column holds each seed's attacked score, not the clean one.
        var fgsm = section["columns"]![2]!["values"]![0]!.AsArray().Select(v => v!.GetValue<double>()).ToList();
        var clean = section["columns"]![0]!["values"]![0]!.AsArray().Select(v => v!.GetValue<double>()).ToList();
        Assert.All(fgsm.Zip(clean), p => Assert.Equal(p.Second - 0.28, p.First, 6));
        // A constant outer rate gets no curve; the config diff knows the keys every run shares.
        Assert.Null(data["runs"]![0]!["lr"]);
        Assert.Equal("omniglot", section["common"]!["data.dataset"]!.GetValue<string>());
    }

    [Fact]
    public void SecondsPerIterationLeavesOutStepsThatFollowAValidationOrACheckpoint()
    {
        var dir = TestPaths.NewTempDir("htmlreport");
        var run = RunFolder.Read(WriteRuns(dir, 1, 1)[0]);
        var seconds = Plots.SecondsPerIteration(run);
        // The clock gains a second at every 50th iteration (its validation): the step after it is left out.
        Assert.All(seconds, s => Assert.Equal(0.05, s.Seconds, 3));
        Assert.DoesNotContain(seconds, s => s.Iteration == 51 || s.Iteration == 101);
        Assert.Equal(299 - 5, seconds.Count);
    }

    [SkippableTheory]
    [InlineData(2, 1)]
    [InlineData(10, 2)]
    public void TheReportWithFewOrManyRunsDrawsInChromiumWithoutErrorsAndIsNotBlank(int settings, int seeds)
    {
        var chromium = ChromiumPage.Require();
        var dir = TestPaths.NewTempDir("htmlreport");
        WriteRuns(Path.Combine(dir, "runs"), settings, seeds, attacked: true);
        var runs = RunFolder.Discover([Path.Combine(dir, "runs")]);
        Assert.Equal(settings * seeds, runs.Count);
        var report = HtmlReport.Write(runs, Path.Combine(dir, "report.html"));
        Assert.Empty(ChromiumPage.ConsoleMessages(chromium, report));
        var probe = ChromiumPage.Interact(chromium, report);
        Assert.True(probe.GetProperty("errors").GetArrayLength() == 0, probe.ToString());
        Assert.Equal(0, probe.GetProperty("resources").GetArrayLength());
        Assert.Equal(settings, probe.GetProperty("resultRows").GetInt32());
        Assert.Equal(["Evaluation: fgsm ε=0.1"], probe.GetProperty("variants").EnumerateArray().Select(v => v.GetString()));
        // A reliability diagram per run, a bar per occupied bin (11 of 15); the calibration and OOD figures in the results table.
        Assert.Equal(settings * seeds, probe.GetProperty("reliabilityDiagrams").GetInt32());
        Assert.All(probe.GetProperty("reliabilityBars").EnumerateArray(), b => Assert.Equal(11, b.GetInt32()));
        Assert.Equal(["test NLL", "test ECE", "test Brier", "OOD AUROC (entropy)", "OOD AUROC (max probability)"], probe.GetProperty("calibrationHeaders").EnumerateArray().Select(v => v.GetString()));
        Assert.True(probe.GetProperty("toggleChanged").GetInt32() >= 4, probe.ToString());
        Assert.Contains("iteration", probe.GetProperty("tooltip").GetString());

        var artifacts = Path.Combine(TestPaths.RepoRoot, "test-artifacts");
        Directory.CreateDirectory(artifacts);
        var shot = ChromiumPage.Screenshot(chromium, report, Path.Combine(artifacts, $"report-{settings * seeds}-runs.png"), 1400, 2600);
        Assert.True(ChromiumPage.Colours(shot) > 20, $"{shot} looks blank");
    }
}
