using System.Text.Json;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Models;
using MetaRun.Tests.Cli;
using MetaRun.Training;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// The meta-learner LSTM against the paper's equations: the preprocessing and one cell update
/// computed by hand, and the outer gradient (meta-learner weights and c_0) against finite
/// differences of the query loss with the learner's losses and gradients held as inputs.
/// </summary>
public class MetaLstmTests
{
    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>Andrychowicz et al.'s two branches, written out.</summary>
    private static (double, double) Pre(double x) =>
        Math.Abs(x) >= Math.Exp(-10) ? (Math.Log(Math.Abs(x)) / 10, Math.Sign(x)) : (-1, Math.Exp(10) * x);

    private static void Set(Tensor t, float[] values)
    {
        using var noGrad = Torch.NoGrad();
        t.CopyFrom(Torch.From(values, t.Shape));
    }

    [Fact]
    public void Preprocessing_is_the_log_magnitude_and_sign_above_e_to_the_minus_p_and_scaled_value_below()
    {
        using var scope = Torch.NewScope();
        float[] xs = [0f, 1e-6f, -3e-5f, 4.6e-5f, -1e-4f, 0.25f, -2f, 1000f];
        var pre = Values(MetaLstm.Preprocess(Torch.From(xs, xs.Length)));
        for (var i = 0; i < xs.Length; i++)
        {
            var (a, b) = Pre(xs[i]);
            Assert.True(Math.Abs(pre[2 * i] - a) < 1e-6 && Math.Abs(pre[2 * i + 1] - b) < 1e-5, $"x = {xs[i]}: got ({pre[2 * i]}, {pre[2 * i + 1]}), by hand ({a}, {b})");
        }
    }

    [Fact]
    public void With_only_biases_the_update_is_c_times_sigma_bF_minus_sigma_bI_times_the_gradient()
    {
        using var scope = Torch.NewScope();
        using var learner = new MetaLstm(Tiny([]), new Objective(false), steps: 1, testSteps: 1, clip: 0, seed: 1);
        var own = learner.OuterParameters.Skip(2).ToArray();
        foreach (var w in own) Set(w, new float[w.NumElements]);
        // f = σ(ln 3) = 0.75, i = σ(−ln 9) = 0.1.
        Set(own[5], [(float)Math.Log(3)]);
        Set(own[7], [(float)-Math.Log(9)]);
        var s = learner.Initial();
        var grad = Torch.From(new float[] { 1, -2, 0.5f, 0, 3, -1, 2, 4 }, 8);
        var next = learner.Step(s, Torch.Scalar(0.7), grad);
        var c0 = Values(s.C);
        var c1 = Values(next.C);
        var g = Values(grad);
        for (var k = 0; k < 8; k++) Assert.True(Math.Abs(c1[k] - (0.75 * c0[k] - 0.1 * g[k])) < 1e-6, $"coordinate {k}: {c1[k]}");
        Assert.All(Values(next.Forget), f => Assert.Equal(0.75, f, 6));
        Assert.All(Values(next.Input), i => Assert.Equal(0.1, i, 6));
    }

    [Fact]
    public void Two_updates_with_random_weights_match_the_equations_computed_by_hand()
    {
        using var scope = Torch.NewScope();
        using var learner = new MetaLstm(Tiny([]), new Objective(false), steps: 2, testSteps: 2, clip: 0, seed: 1);
        var own = learner.OuterParameters.Skip(2).ToArray();
        using (var g = new Generator(5))
            foreach (var w in own) Set(w, Values(Torch.Randn(w.Shape, generator: g) * 0.5));
        var p = own.Select(w => Values(w).Select(v => (double)v).ToArray()).ToArray();
        const int h = MetaLstm.Hidden;

        var s = learner.Initial();
        var c = Values(s.C).Select(v => (double)v).ToArray();
        var n = c.Length;
        var (hs, ss, fs, iss) = (new double[n, h], new double[n, h], new double[n], new double[n]);
        float[][] grads = [[1, -2, 0.5f, 0, 3e-6f, -1, 2, 4], [-0.3f, 0.1f, 0, 2, -5, 1e-5f, 0.2f, -0.7f]];
        float[] losses = [0.9f, 0.4f];
        for (var t = 0; t < 2; t++)
        {
            s = learner.Step(s, Torch.Scalar(losses[t]), Torch.From(grads[t], n));
            var (l0, l1) = Pre(losses[t]);
            var next = new double[n];
            for (var k = 0; k < n; k++)
            {
                var (g0, g1) = Pre(grads[t][k]);
                double[] x = [l0, l1, g0, g1];
                // PyTorch's LSTM cell: gates i, f, g, o in blocks of 20 rows of w_ih, w_hh and the biases.
                var gate = new double[4 * h];
                for (var r = 0; r < 4 * h; r++)
                {
                    gate[r] = p[2][r] + p[3][r];
                    for (var j = 0; j < 4; j++) gate[r] += p[0][r * 4 + j] * x[j];
                    for (var j = 0; j < h; j++) gate[r] += p[1][r * h + j] * hs[k, j];
                }
                var hNew = new double[h];
                for (var u = 0; u < h; u++)
                {
                    ss[k, u] = Sigmoid(gate[h + u]) * ss[k, u] + Sigmoid(gate[u]) * Math.Tanh(gate[2 * h + u]);
                    hNew[u] = Sigmoid(gate[3 * h + u]) * Math.Tanh(ss[k, u]);
                }
                double zf = p[5][0] + p[4][h] * c[k] + p[4][h + 1] * fs[k], zi = p[7][0] + p[6][h] * c[k] + p[6][h + 1] * iss[k];
                for (var u = 0; u < h; u++)
                {
                    hs[k, u] = hNew[u];
                    zf += p[4][u] * hNew[u];
                    zi += p[6][u] * hNew[u];
                }
                (fs[k], iss[k]) = (Sigmoid(zf), Sigmoid(zi));
                next[k] = fs[k] * c[k] - iss[k] * grads[t][k];
            }
            c = next;
            var got = Values(s.C);
            for (var k = 0; k < n; k++) Assert.True(Math.Abs(got[k] - c[k]) < 1e-5 * (1 + Math.Abs(c[k])), $"update {t + 1}, coordinate {k}: {got[k]}, by hand {c[k]}");
        }
    }

    [Fact]
    public void The_outer_gradient_of_the_meta_learner_and_c0_matches_finite_differences_with_the_learner_inputs_held()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        var objective = new Objective(false);
        using var learner = new MetaLstm(Tiny([]), objective, steps: 3, testSteps: 3, clip: 0, seed: 2);
        var own = learner.OuterParameters.Skip(2).ToArray();
        // Rates large enough that the steps move the learner, and every weight matters.
        Set(own[7], [-1f]);
        Set(own[5], [2f]);
        using (var g = new Generator(9))
            foreach (var w in own.Where(w => w.NumElements > 1)) Set(w, Values(Torch.Randn(w.Shape, generator: g) * 0.3));

        // The learner's losses and gradients at the base point: inputs to the meta-learner, not functions of its weights.
        using var net = Tiny([]);
        var inputs = new List<(Tensor Loss, Tensor Grad)>();
        var s = learner.Initial();
        for (var t = 0; t < 3; t++)
        {
            var theta = s.C.Detach().RequiresGrad_();
            var loss = objective.Loss(net.Forward(task.SupportX, learner.Unflatten(theta)), task.SupportY);
            var grad = Torch.Grad([loss], [theta])[0]!;
            inputs.Add((loss.Detach(), grad));
            using (Torch.NoGrad()) s = learner.Step(s, loss.Detach(), grad);
        }
        double QueryLoss()
        {
            var state = learner.Initial();
            foreach (var (loss, grad) in inputs) state = learner.Step(state, loss, grad);
            return objective.Loss(net.Forward(task.QueryX, learner.Unflatten(state.C)), task.QueryY).Item();
        }

        var r = learner.TaskGradient(task, 1.0);
        Assert.Equal(QueryLoss(), r.Loss, 5);
        var sizeable = FiniteDifferences.Check(learner.OuterParameters, learner.OuterParameterNames, r.Gradients, QueryLoss, h: 1e-3, absTol: 2e-4, relTol: 2e-2, perTensor: 4);
        Assert.True(sizeable >= 20, $"only {sizeable} entries had a sizeable gradient");
    }

    [Fact]
    public void At_meta_test_a_query_is_normalized_with_the_support_averages_so_no_query_depends_on_another()
    {
        using var scope = Torch.NewScope();
        Conv4 model;
        using (var gm = new Generator(4)) model = new Conv4([1, 12, 12], filters: 4, outputs: 2, maxPool: false, gm, Device.Cpu);
        using var learner = new MetaLstm(model, new Objective(false), steps: 2, testSteps: 2, clip: 0, seed: 3);
        using var g = new Generator(8);
        var task = new Episode(Torch.Randn([4, 1, 12, 12], generator: g), Torch.From(new long[] { 0, 1, 0, 1 }, 4),
            Torch.Randn([6, 1, 12, 12], generator: g), Torch.From(new long[] { 0, 1, 0, 1, 0, 1 }, 6));
        var all = learner.AdaptTo(task).Logits;
        var alone = learner.AdaptTo(task with { QueryX = task.QueryX.Narrow(0, 2, 1) }).Logits;
        Close(all.Narrow(0, 2, 1), alone, 1e-5);
        // With the batch's statistics (training) the query's logits would depend on the other queries.
        var predictor = learner.Predictor(task);
        Close(all, predictor(task.QueryX), 1e-5);
        var transductive = model.Forward(task.QueryX, learner.Unflatten(learner.Adapt(task.SupportX, task.SupportY, 2)));
        Assert.True(Values(transductive - all).Max(Math.Abs) > 1e-3);
    }

    [Fact]
    public void Clipping_scales_the_whole_outer_gradient_to_the_given_norm()
    {
        using var scope = Torch.NewScope();
        using var learner = new MetaLstm(Tiny([]), new Objective(false), steps: 1, testSteps: 1, clip: 0.25, seed: 1);
        Tensor?[] grads = [Torch.From(new float[] { 3, 0 }, 2), null, Torch.From(new float[] { 0, 4 }, 2)];
        Assert.Equal(0.01, learner.BeforeOuterStep(grads, 0.01));
        Assert.Equal(new[] { 0.15f, 0f }, Values(grads[0]!));
        Assert.Equal(new[] { 0f, 0.2f }, Values(grads[2]!));
        Tensor?[] small = [Torch.From(new float[] { 0.1f, 0 }, 2)];
        learner.BeforeOuterStep(small, 0.01);
        Assert.Equal(new[] { 0.1f, 0f }, Values(small[0]!));
    }

    [Fact]
    public void A_config_without_updates_names_inner_steps()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("data:\n  dataset: omniglot\nalgorithm:\n  name: meta-lstm\n  inner_steps: 0\n", "t.yaml"));
        Assert.Contains("algorithm.inner_steps", e.Message);
        Assert.Contains("meta-lstm", e.Message);
    }
}

/// <summary>Meta-LSTM through the command line on the real Omniglot: train, resume bit for bit, evaluate.</summary>
[Collection(ProcessWideCollection.Name)]
public class MetaLstmRunTests
{
    private static string[] Train(string config, string run, int iterations, bool resume) =>
        ["train", config, resume ? "--resume" : "--out", run, "--data-root", TestPaths.SharedDatasets,
         "--set", $"algorithm.iterations={iterations}", "--set", "algorithm.inner_steps=3", "--set", "algorithm.meta_batch_size=2",
         "--set", "model.filters=8", "--set", "eval.interval=2", "--set", "eval.episodes=6", "--set", "data.train.queries=2",
         "--set", "checkpoint.interval=2", "--set", "threads=1", "--set", "workers=2"];

    private static byte[] Weights(string run)
    {
        using var c = Checkpoint.Load(Path.Combine(run, "checkpoints", "last.safetensors"));
        Assert.Contains("meta_lstm.input.bias", c.Parameters.Keys);
        return [.. c.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).SelectMany(p => p.Value.ToBytes())];
    }

    [Fact]
    public void The_cpu_config_trains_resumes_bit_identically_and_eval_reproduces_the_logged_validation()
    {
        var config = Path.Combine(TestPaths.Configs, "omniglot", "meta-lstm-5w1s-cpu.yaml");
        var dir = TestPaths.NewTempDir("meta-lstm");
        var (straight, resumed) = (Path.Combine(dir, "straight"), Path.Combine(dir, "resumed"));
        // Each run in a process of its own, as a user's are (see ModelBasedRunTests).
        var (code, err) = MetaRun.Tests.Distributed.Metarun.Run(Train(config, straight, 4, resume: false));
        Assert.True(code == 0, err);
        (code, err) = MetaRun.Tests.Distributed.Metarun.Run(Train(config, resumed, 2, resume: false));
        Assert.True(code == 0, err);
        var early = Weights(resumed);
        (code, err) = MetaRun.Tests.Distributed.Metarun.Run(Train(config, resumed, 4, resume: true));
        Assert.True(code == 0, err);
        Assert.NotEqual(early, Weights(resumed));
        Assert.Equal(Weights(straight), Weights(resumed));

        var logged = File.ReadAllLines(Path.Combine(straight, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.TryGetProperty("val_accuracy", out _)).Select(r => r.GetProperty("val_accuracy").GetDouble()).ToArray();
        Assert.Equal(2, logged.Length);
        var result = Path.Combine(dir, "eval.json");
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", Path.Combine(straight, "checkpoints", "best.safetensors"), "--split", "val", "--episodes", "6",
            "--out", result, "--data-root", TestPaths.SharedDatasets);
        Assert.True(code == 0, err);
        Assert.Equal(Math.Round(logged.Max(), 6), JsonDocument.Parse(File.ReadAllText(result)).RootElement.GetProperty("mean").GetDouble(), 6);
    }

    [Theory]
    [InlineData("meta-lstm-5w1s.yaml")]
    [InlineData("meta-lstm-5w5s.yaml")]
    public void The_miniimagenet_configs_train_and_evaluate_on_a_generated_miniimagenet(string file)
    {
        // miniImageNet's real layout with 3 training classes of 6 images: the episodes are cut to fit it.
        var dir = TestPaths.NewTempDir("meta-lstm-mini");
        var root = MetaRun.Tests.Data.MiniImageNetBuilder.Build(dir);
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", Path.Combine(TestPaths.Configs, "miniimagenet", file), "--out", run, "--data-root", root,
            "--set", "data.image_size=16", "--set", "data.train.ways=2", "--set", "data.train.shots=2", "--set", "data.train.queries=2",
            "--set", "data.test.ways=2", "--set", "data.test.shots=2", "--set", "data.test.queries=2", "--set", "algorithm.iterations=2",
            "--set", "algorithm.inner_steps=2", "--set", "eval.interval=0", "--set", "threads=1", "--set", "workers=1");
        Assert.True(code == 0, err);
        var result = Path.Combine(dir, "eval.json");
        (code, _, err) = CliRunner.Run("eval", run, "--episodes", "3", "--out", result, "--data-root", root);
        Assert.True(code == 0, err);
        Assert.InRange(JsonDocument.Parse(File.ReadAllText(result)).RootElement.GetProperty("mean").GetDouble(), 0.0, 1.0);
    }
}
