using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// The learned optimizer of Andrychowicz et al. (2016) against hand computations: the gradient
/// preprocessing of Appendix A, one LSTM step with weights set so the update is a known function of
/// the gradient's sign, the truncated meta-gradient against finite differences of the replayed
/// optimisation (gradients held as inputs), and a resumed run.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class LearnedOptimizerTests
{
    private static float[] Values(Tensor t) => t.Detach().Contiguous().ToArray<float>();

    /// <summary>A 3-input linear regressor and a task for it (support 5 points, query 7).</summary>
    private static (Mlp Model, Episode Task) Linear(int seed = 21)
    {
        Mlp model;
        using (var gm = new Generator(5)) model = new Mlp(3, [], 1, gm, Device.Cpu);
        using var g = new Generator((ulong)seed);
        var (sx, qx) = (Torch.Randn([5, 3], generator: g), Torch.Randn([7, 3], generator: g));
        return (model, new Episode(sx, Torch.Randn([5, 1], generator: g), qx, Torch.Randn([7, 1], generator: g)));
    }

    [Fact]
    public void Preprocessing_gives_log_magnitude_over_p_and_sign_above_e_to_the_minus_p_and_minus_one_and_scaled_gradient_below()
    {
        using var scope = Torch.NewScope();
        double[] g = [1, -0.01, 3e-5, -1e-6, 0, 250];
        var x = Values(LearnedOptimizer.Preprocess(Torch.From(g.Select(v => (float)v).ToArray(), g.Length)));
        var p = LearnedOptimizer.P;
        double[] expected =
        [
            0, 1,
            Math.Log(0.01) / p, -1,
            -1, 3e-5 * Math.Exp(p),      // 3e-5 < e^-10 ≈ 4.54e-5
            -1, -1e-6 * Math.Exp(p),
            -1, 0,
            Math.Log(250) / p, 1,
        ];
        Assert.Equal(expected.Length, x.Length);
        for (var i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - expected[i]) < 1e-5, $"entry {i}: {x[i]} vs {expected[i]}");
    }

    [Fact]
    public void One_step_with_weights_that_pass_the_gradient_sign_through_both_cells_gives_the_hand_computed_update()
    {
        using var scope = Torch.NewScope();
        var (model, _) = Linear();
        using var l2l = new LearnedOptimizer(model, new Objective(regression: true), 1, 1, 1, 1, outputScale: 0.1);
        const int h = LearnedOptimizer.Hidden;
        using (Torch.NoGrad())
        {
            foreach (var w in l2l.OuterParameters) w.Fill_(0);
            // Gate order i, f, g, o (PyTorch's): the cell input g of unit 0 reads the sign input in
            // layer 1 and unit 0 of layer 1 in layer 2; the output reads unit 0 of layer 2, plus a bias.
            l2l.OuterParameters[0].Flatten().Narrow(0, 2 * h * 2 + 1, 1).Fill_(1);
            l2l.OuterParameters[4].Flatten().Narrow(0, 2 * h * h, 1).Fill_(1);
            l2l.OuterParameters[8].Flatten().Narrow(0, 0, 1).Fill_(2);
            l2l.OuterParameters[9].Fill_(0.5);
        }
        double[] grads = [0.3, -2, 1e-7];
        var (update, next) = l2l.Step(Torch.From(grads.Select(v => (float)v).ToArray(), 3), LearnedOptimizer.State.Zeros(3, Device.Cpu));
        var u = Values(update);
        for (var i = 0; i < 3; i++)
        {
            // Sign input s; zero states: every gate σ(0) = 1/2, c = i·g = tanh(s)/2, h = o·tanh(c).
            var s = Math.Abs(grads[i]) >= Math.Exp(-LearnedOptimizer.P) ? Math.Sign(grads[i]) : grads[i] * Math.Exp(LearnedOptimizer.P);
            var h1 = 0.5 * Math.Tanh(0.5 * Math.Tanh(s));
            var h2 = 0.5 * Math.Tanh(0.5 * Math.Tanh(h1));
            Assert.True(Math.Abs(u[i] - 0.1 * (2 * h2 + 0.5)) < 1e-6, $"coordinate {i}: {u[i]} vs {0.1 * (2 * h2 + 0.5)}");
        }
        Assert.Equal([3L, h], next.H2.Shape);
    }

    /// <summary>
    /// The meta-loss as the paper differentiates it: the optimisation replayed with φ perturbed but
    /// each step's gradient input held at the recorded ∇_t, each unroll starting from the recorded
    /// θ and LSTM state (constants under truncation).
    /// </summary>
    [Fact]
    public void The_truncated_meta_gradient_matches_finite_differences_of_the_replay_with_gradients_held_fixed()
    {
        using var scope = Torch.NewScope();
        var (model, task) = Linear();
        const int steps = 4, unroll = 2;
        using var l2l = new LearnedOptimizer(model, new Objective(regression: true), 3, steps, steps, unroll, outputScale: 0.1);
        const double weight = 0.5;
        var analytic = l2l.TaskGradient(task, weight).Gradients;

        // The recorded trajectory: θ_t, the LSTM state and ∇_t at every step.
        var thetas = new List<Tensor>();
        var states = new List<LearnedOptimizer.State>();
        var grads = new List<Tensor>();
        using (Torch.NoGrad())
        {
            var theta = l2l.InitialTheta(task.SupportX);
            var state = LearnedOptimizer.State.Zeros(theta.Size(0), Device.Cpu);
            for (var t = 0; t < steps; t++)
            {
                thetas.Add(theta);
                states.Add(state);
                Tensor g;
                using (Torch.EnableGrad()) g = l2l.SupportGradient(theta, task);
                grads.Add(g);
                Tensor update;
                (update, state) = l2l.Step(g, state);
                theta = theta + update;
            }
        }
        double Replay()
        {
            using var noGrad = Torch.NoGrad();
            double total = 0;
            for (var start = 0; start < steps; start += unroll)
            {
                var (theta, state) = (thetas[start], states[start]);
                for (var t = start; t < start + unroll; t++)
                {
                    Tensor update;
                    (update, state) = l2l.Step(grads[t], state);
                    theta = theta + update;
                    total += l2l.LossAt(theta, task.QueryX, task.QueryY).Item();
                }
            }
            return total * weight;
        }
        var sizeable = FiniteDifferences.Check(l2l.OuterParameters, l2l.OuterParameterNames, analytic, Replay, h: 1e-2, absTol: 2e-4, relTol: 2e-2, perTensor: 4);
        Assert.True(sizeable >= 10, $"only {sizeable} sizeable gradient entries");
    }

    [Fact]
    public void Training_reports_the_same_final_query_loss_that_evaluation_scores()
    {
        using var scope = Torch.NewScope();
        var (model, task) = Linear();
        using var l2l = new LearnedOptimizer(model, new Objective(regression: true), 3, 6, 6, 4, outputScale: 0.1);
        var trained = l2l.TaskGradient(task, 1).Loss;
        var evaluated = l2l.Evaluate(task).Loss;
        Assert.True(Math.Abs(trained - evaluated) < 1e-5 * Math.Max(1, Math.Abs(evaluated)), $"training {trained}, evaluation {evaluated}");
    }

    [Fact]
    public void A_resumed_run_ends_bit_identical_to_an_uninterrupted_one()
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
              inner_steps: 6
              l2l_unroll: 4
              meta_batch_size: 2
              iterations: 2
            eval:
              interval: 0
            checkpoint:
              interval: 2
            """);
        ResumeCheck.AssertResumedEqualsStraight(dir, path);
    }
}
