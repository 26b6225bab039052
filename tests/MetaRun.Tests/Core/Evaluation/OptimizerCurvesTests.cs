using System.Text.Json.Nodes;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Evaluation;
using MetaRun.Models;
using MetaRun.Reports;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Evaluation;

/// <summary>The baselines a learned optimizer is drawn against, step by step by hand on a tiny quadratic, and how their rate is picked.</summary>
[Collection(ProcessWideCollection.Name)]
public class OptimizerCurvesTests
{
    private static readonly double[,] X = { { 1, 2 }, { -0.5, 1 }, { 2, -1 } };
    private static readonly double[] Y = [1, -2, 0.5];

    private static float[] Values(Tensor t) => t.Detach().Contiguous().ToArray<float>();

    /// <summary>Mean squared residual of (w, b) and its gradient: (2/n) Σ r_i (x_i, 1).</summary>
    private static (double Loss, double[] Grad) Quadratic(double[] p)
    {
        double loss = 0;
        var g = new double[3];
        for (var i = 0; i < 3; i++)
        {
            var r = p[0] * X[i, 0] + p[1] * X[i, 1] + p[2] - Y[i];
            loss += r * r / 3;
            g[0] += 2.0 / 3 * r * X[i, 0];
            g[1] += 2.0 / 3 * r * X[i, 1];
            g[2] += 2.0 / 3 * r;
        }
        return (loss, g);
    }

    private static double[] ByHand(string kind, double rate, double[] start, int steps)
    {
        var p = (double[])start.Clone();
        var (m, v) = (new double[3], new double[3]);
        var curve = new List<double>();
        for (var t = 1; ; t++)
        {
            var (loss, g) = Quadratic(p);
            curve.Add(loss);
            if (t > steps) return [.. curve];
            for (var k = 0; k < 3; k++)
                switch (kind)
                {
                    case "sgd":
                        p[k] -= rate * g[k];
                        break;
                    case "adam":
                        m[k] = 0.9 * m[k] + 0.1 * g[k];
                        v[k] = 0.999 * v[k] + 0.001 * g[k] * g[k];
                        p[k] -= rate * (m[k] / (1 - Math.Pow(0.9, t))) / (Math.Sqrt(v[k] / (1 - Math.Pow(0.999, t))) + 1e-8);
                        break;
                    default:
                        v[k] = 0.99 * v[k] + 0.01 * g[k] * g[k];
                        p[k] -= rate * g[k] / (Math.Sqrt(v[k]) + 1e-8);
                        break;
                }
        }
    }

    [Theory]
    [InlineData("sgd", 0.1)]
    [InlineData("adam", 0.05)]
    [InlineData("rmsprop", 0.01)]
    public void A_baselines_curve_is_its_update_rule_by_hand(string kind, double rate)
    {
        using var scope = Torch.NewScope();
        Mlp model;
        using (var g = new Generator(3)) model = new Mlp(2, [], 1, g, Device.Cpu);
        using var l2l = new LearnedOptimizer(model, new Objective(regression: true), 1, 3, 3, 3, 0.1);
        var x = Torch.From(new[] { 1f, 2f, -0.5f, 1f, 2f, -1f }, 3, 2);
        var y = Torch.From(Y.Select(v => (float)v).ToArray(), 3, 1);
        var task = new Episode(x, y, x, y);
        var start = Values(model.Parameters[0]).Concat(Values(model.Parameters[1])).Select(v => (double)v).ToArray();
        var curve = OptimizerCurves.BaselineCurve(l2l, task, kind, rate, 3);
        var expected = ByHand(kind, rate, start, 3);
        Assert.Equal(4, curve.Length);
        for (var t = 0; t < 4; t++) Assert.True(Math.Abs(curve[t] - expected[t]) < 1e-5 * Math.Max(1, expected[t]), $"{kind} step {t}: {curve[t]} vs {expected[t]}");
        Assert.True(curve[3] < curve[0], "the loss falls");
        // The model's own weights are where every optimizer starts: untouched.
        Assert.Equal(start, Values(model.Parameters[0]).Concat(Values(model.Parameters[1])).Select(v => (double)v).ToArray());
    }

    [Fact]
    public void The_rate_with_the_lowest_mean_final_loss_is_picked_and_a_rate_that_diverged_anywhere_is_out()
    {
        var n = OptimizerCurves.Rates.Length;
        double[] Finals(Func<int, double> f) => [.. Enumerable.Range(0, n).Select(f)];
        var tasks = new[] { Finals(r => Math.Abs(r - 4)), Finals(r => Math.Abs(r - 6) + (r == 5 ? double.NaN : 0)) };
        // Mean |r−4|, |r−6| is lowest (1) for r = 4, 5, 6; 5 diverged on one task; 4 comes first.
        Assert.Equal(OptimizerCurves.Rates[4], OptimizerCurves.BestRate(tasks));
        Assert.Equal(OptimizerCurves.Rates[6], OptimizerCurves.BestRate([Finals(r => r == 6 ? 0 : double.PositiveInfinity)]));
    }

    [Fact]
    public void Eval_of_an_l2l_run_writes_the_four_curves_which_report_draws()
    {
        var (dir, path) = TestConfigs.Write("""
            name: t
            data:
              dataset: quadratic
            model:
              name: mlp
              hidden: []
            algorithm:
              name: l2l
              inner_steps: 5
              l2l_unroll: 5
              meta_batch_size: 2
              iterations: 2
            eval:
              interval: 0
              episodes: 3
            """);
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", path, "--out", run);
        Assert.True(code == 0, err);
        (code, var stdout, err) = CliRunner.Run("eval", run, "--episodes", "4");
        Assert.True(code == 0, err);
        Assert.Contains("query loss over 5 optimisation steps on 4 test tasks", stdout);
        // A quadratic has no support points to count: no "K=1" in the headline.
        Assert.Contains("over 4 test episodes, one quadratic,", stdout);
        var figure = JsonNode.Parse(File.ReadAllText(Path.Combine(run, Figures.Folder, OptimizerCurves.JsonFile)))!;
        var series = figure["panels"]![0]!["series"]!.AsArray();
        Assert.Equal(4, series.Count);
        Assert.StartsWith("learned", series[0]!["label"]!.GetValue<string>());
        Assert.All(series, s => Assert.Equal(6, s!["y"]!.AsArray().Count));
        // Every optimizer starts from the same θ_0 on the same tasks.
        Assert.All(series, s => Assert.Equal(series[0]!["y"]![0]!.GetValue<double>(), s!["y"]![0]!.GetValue<double>()));
        var csv = File.ReadAllLines(Path.Combine(run, Figures.Folder, OptimizerCurves.CsvFile));
        Assert.Equal(1 + 4 * 6, csv.Length);
        Assert.True(new FileInfo(Path.Combine(run, Figures.Folder, OptimizerCurves.PngFile)).Length > 1000);
        Assert.Single(Figures.RunFigures([RunFolder.Read(run)]));
        var pngs = Path.Combine(dir, "png");
        Assert.Contains(Figures.WritePngs([.. Figures.RunFigures([RunFolder.Read(run)])], pngs), f => f.EndsWith("optimizer-curves-run.png", StringComparison.Ordinal));
    }
}
