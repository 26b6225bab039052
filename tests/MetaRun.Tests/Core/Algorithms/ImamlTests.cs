using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Models;
using MetaRun.Tests.Cli;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

/// <summary>
/// iMAML against closed forms: a linear model with squared loss, where the proximal inner
/// problem, its solution φ*(θ) and the meta-gradient dL_query(φ*(θ))/dθ are all analytic; CG
/// against a direct solve with the Hessian built explicitly; and the inner loop's footprint.
/// </summary>
public class ImamlTests
{
    private const double Lambda = 2.0;

    /// <summary>A 3-input linear regressor (weight [1, 3], bias [1]) and a task for it.</summary>
    private static (Mlp Model, Episode Task) LinearTask()
    {
        Mlp model;
        using (var gm = new Generator(5)) model = new Mlp(3, [], 1, gm, Device.Cpu);
        using var g = new Generator(21);
        var (sx, qx) = (Torch.Randn([5, 3], generator: g), Torch.Randn([7, 3], generator: g));
        return (model, new Episode(sx, Torch.Randn([5, 1], generator: g), qx, Torch.Randn([7, 1], generator: g)));
    }

    /// <summary>Rows [x, 1], so that the model's output is A·[w, b].</summary>
    private static double[,] Design(Tensor x)
    {
        var v = Values(x);
        var n = (int)x.Size(0);
        var a = new double[n, 4];
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < 3; j++) a[i, j] = v[i * 3 + j];
            a[i, 3] = 1;
        }
        return a;
    }

    /// <summary>For L(φ) = mean_i (A_i·φ − y_i)²: its Hessian (2/n)AᵀA and ∇L(φ) = Hφ − (2/n)Aᵀy.</summary>
    private static (double[,] H, double[] Grad) Quadratic(double[,] a, float[] y, double[] phi)
    {
        int n = a.GetLength(0), d = a.GetLength(1);
        var h = new double[d, d];
        var grad = new double[d];
        for (var i = 0; i < n; i++)
        {
            double r = -y[i];
            for (var j = 0; j < d; j++) r += a[i, j] * phi[j];
            for (var j = 0; j < d; j++)
            {
                grad[j] += 2.0 / n * a[i, j] * r;
                for (var k = 0; k < d; k++) h[j, k] += 2.0 / n * a[i, j] * a[i, k];
            }
        }
        return (h, grad);
    }

    /// <summary>x = M⁻¹b by Gaussian elimination with partial pivoting (M is small and well conditioned here).</summary>
    private static double[] Solve(double[,] m, double[] b)
    {
        var d = b.Length;
        var (a, x) = ((double[,])m.Clone(), (double[])b.Clone());
        for (var c = 0; c < d; c++)
        {
            var p = Enumerable.Range(c, d - c).MaxBy(r => Math.Abs(a[r, c]));
            for (var k = 0; k < d; k++) (a[c, k], a[p, k]) = (a[p, k], a[c, k]);
            (x[c], x[p]) = (x[p], x[c]);
            for (var r = c + 1; r < d; r++)
            {
                var f = a[r, c] / a[c, c];
                for (var k = c; k < d; k++) a[r, k] -= f * a[c, k];
                x[r] -= f * x[c];
            }
        }
        for (var r = d - 1; r >= 0; r--)
        {
            for (var k = r + 1; k < d; k++) x[r] -= a[r, k] * x[k];
            x[r] /= a[r, r];
        }
        return x;
    }

    private static double[,] IdentityPlus(double[,] h, double scale)
    {
        var d = h.GetLength(0);
        var m = new double[d, d];
        for (var i = 0; i < d; i++)
            for (var j = 0; j < d; j++) m[i, j] = (i == j ? 1 : 0) + scale * h[i, j];
        return m;
    }

    private static double[] Flat(IEnumerable<Tensor?> tensors) => [.. tensors.SelectMany(t => Values(t!).Select(v => (double)v))];

    /// <summary>φ*(θ) = argmin L_support(φ) + (λ/2)‖φ − θ‖² = (H + λI)⁻¹(λθ + (2/n)Aᵀy), and L_query there.</summary>
    private static (double[] Phi, double Loss) ClosedForm(double[] theta, double[,] aS, float[] yS, double[,] aQ, float[] yQ)
    {
        var (h, gradAtZero) = Quadratic(aS, yS, new double[4]);
        var m = IdentityPlus(h, 1 / Lambda);
        // (I + H/λ)φ = θ + (2/(nλ))Aᵀy, and −∇L(0) = (2/n)Aᵀy.
        var phi = Solve(m, [.. theta.Select((t, j) => t - gradAtZero[j] / Lambda)]);
        double loss = 0;
        for (var i = 0; i < yQ.Length; i++)
        {
            double r = -yQ[i];
            for (var j = 0; j < 4; j++) r += aQ[i, j] * phi[j];
            loss += r * r / yQ.Length;
        }
        return (phi, loss);
    }

    [Fact]
    public void On_a_linear_least_squares_task_the_implicit_meta_gradient_equals_the_closed_form()
    {
        using var scope = Torch.NewScope();
        var (model, task) = LinearTask();
        var theta = Flat(model.Parameters);
        // 300 steps of rate 0.05 contract the error by (1 − 0.05(λ + h_min))³⁰⁰ < 1e-13: φ is φ* to float precision.
        using var imaml = new Imaml(model, new Objective(true), innerLr: 0.05, innerSteps: 300, testInnerSteps: 300, Lambda, cgSteps: 8);
        var (aS, aQ, yS, yQ) = (Design(task.SupportX), Design(task.QueryX), Values(task.SupportY), Values(task.QueryY));
        var (phiStar, _) = ClosedForm(theta, aS, yS, aQ, yQ);

        var adapted = Flat(imaml.Adapt(task.SupportX, task.SupportY, 300, createGraph: false));
        for (var j = 0; j < 4; j++) Assert.True(Math.Abs(adapted[j] - phiStar[j]) < 1e-5 * (1 + Math.Abs(phiStar[j])), $"φ[{j}]: inner loop {adapted[j]}, closed form {phiStar[j]}");

        // The analytic meta-gradient: dφ*/dθ = λ(H + λI)⁻¹ = (I + H/λ)⁻¹ (H is constant), times ∇L_query(φ*).
        var (h, _) = Quadratic(aS, yS, phiStar);
        var (_, queryGrad) = Quadratic(aQ, yQ, phiStar);
        var analytic = Solve(IdentityPlus(h, 1 / Lambda), queryGrad);
        // ... which is the derivative of θ ↦ L_query(φ*(θ)) itself (central differences on the closed form).
        for (var j = 0; j < 4; j++)
        {
            const double eps = 1e-5;
            var (up, down) = ((double[])theta.Clone(), (double[])theta.Clone());
            up[j] += eps;
            down[j] -= eps;
            var fd = (ClosedForm(up, aS, yS, aQ, yQ).Loss - ClosedForm(down, aS, yS, aQ, yQ).Loss) / (2 * eps);
            Assert.True(Math.Abs(fd - analytic[j]) < 1e-7 * (1 + Math.Abs(fd)), $"θ[{j}]: finite differences {fd}, analytic {analytic[j]}");
        }

        var result = imaml.TaskGradient(task, 1.0);
        var implicitGrad = Flat(result.Gradients);
        for (var j = 0; j < 4; j++)
            Assert.True(Math.Abs(implicitGrad[j] - analytic[j]) < 1e-4 * (1 + Math.Abs(analytic[j])), $"θ[{j}]: iMAML {implicitGrad[j]}, analytic {analytic[j]}");
        // Not first-order MAML's answer (the query gradient at φ as it is): the correction (I + H/λ)⁻¹ matters here.
        Assert.True(queryGrad.Zip(analytic).Max(p => Math.Abs(p.First - p.Second)) > 1e-2);
        Assert.True(imaml.Traced()[0] < 1e-4, $"CG residual {imaml.Traced()[0]}");
    }

    /// <summary>The support loss's Hessian at φ, column by column (a double backward per weight), and the query gradient there, for the tiny network.</summary>
    private static (double[,] H, double[] QueryGrad) HessianAndQueryGradient(Episode task, Tensor[] phi)
    {
        var model = Tiny([4]);
        var d = phi.Sum(w => (int)w.NumElements);
        var grads = Grad(new Objective(false).Loss(model.Forward(task.SupportX, phi), task.SupportY), phi, createGraph: true);
        var flatGrad = Torch.Cat([.. grads.Select(t => t.Reshape(-1))]);
        var h = new double[d, d];
        for (var i = 0; i < d; i++)
        {
            var column = Flat(Torch.Grad([flatGrad.Narrow(0, i, 1).Sum()], phi, retainGraph: true, allowUnused: true)
                .Select((t, k) => t ?? Torch.Zeros(phi[k].Shape)));
            for (var j = 0; j < d; j++) h[j, i] = column[j];
        }
        return (h, Flat(Grad(new Objective(false).Loss(model.Forward(task.QueryX, phi), task.QueryY), phi)));
    }

    [Fact]
    public void Conjugate_gradient_on_a_tiny_network_converges_to_the_direct_solve_with_the_explicit_Hessian()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        using var imaml = new Imaml(Tiny([4]), new Objective(false), innerLr: 0.3, innerSteps: 5, testInnerSteps: 5, Lambda, cgSteps: 60);
        // The Hessian of the support loss at the adapted φ, column by column (a double backward per weight).
        var phi = imaml.Adapt(task.SupportX, task.SupportY, 5, createGraph: false).Select(w => w.Detach().RequiresGrad_()).ToArray();
        var (h, queryGrad) = HessianAndQueryGradient(task, phi);
        var d = queryGrad.Length;
        var direct = Solve(IdentityPlus(h, 1 / Lambda), queryGrad);

        var r = imaml.TaskGradient(task, 1.0);
        var cg = Flat(r.Gradients);
        var scale = direct.Max(Math.Abs);
        for (var j = 0; j < d; j++) Assert.True(Math.Abs(cg[j] - direct[j]) < 1e-4 * scale, $"entry {j}: CG {cg[j]}, direct solve {direct[j]}");
        Assert.True(imaml.Traced()[0] < 1e-4, $"CG residual {imaml.Traced()[0]}");

        // One CG step is not converged, and the traced residual says so.
        using var oneStep = new Imaml(Tiny([4]), new Objective(false), innerLr: 0.3, innerSteps: 5, testInnerSteps: 5, Lambda, cgSteps: 1);
        oneStep.TaskGradient(task, 1.0);
        Assert.True(oneStep.Traced()[0] > 1e-3, $"one CG step left residual {oneStep.Traced()[0]}");
    }

    [Fact]
    public void With_damping_conjugate_gradient_solves_the_damped_system_instead()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        const double damping = 3.0;
        using var imaml = new Imaml(Tiny([4]), new Objective(false), innerLr: 0.3, innerSteps: 5, testInnerSteps: 5, Lambda, cgSteps: 60, cgDamping: damping);
        var phi = imaml.Adapt(task.SupportX, task.SupportY, 5, createGraph: false).Select(w => w.Detach().RequiresGrad_()).ToArray();
        var (h, queryGrad) = HessianAndQueryGradient(task, phi);
        var d = queryGrad.Length;
        var damped = Solve(IdentityPlus(h, 1 / (Lambda + damping)), queryGrad);
        var undamped = Solve(IdentityPlus(h, 1 / Lambda), queryGrad);

        var cg = Flat(imaml.TaskGradient(task, 1.0).Gradients);
        var scale = damped.Max(Math.Abs);
        for (var j = 0; j < d; j++) Assert.True(Math.Abs(cg[j] - damped[j]) < 1e-4 * scale, $"entry {j}: CG {cg[j]}, damped direct solve {damped[j]}");
        // The damping changes the answer: it is not the paper's system any more.
        Assert.True(damped.Zip(undamped).Max(p => Math.Abs(p.First - p.Second)) > 1e-3 * scale);
    }

    [Fact]
    public void Hessian_vector_products_through_conv4_with_batch_norm_match_finite_differences_of_its_gradient()
    {
        // The double backward iMAML's products take, through convolutions, batch norm and ReLU:
        // vᵀHv against vᵀ(∇L(φ + εv) − ∇L(φ − εv)) / 2ε. This is what shows that the negative
        // curvature CG meets on Omniglot (cg_residual) belongs to the loss, not to the products.
        using var scope = Torch.NewScope();
        Conv4 model;
        using (var gm = new Generator(4)) model = new Conv4([1, 12, 12], filters: 4, outputs: 2, maxPool: false, gm, Device.Cpu);
        using var g = new Generator(8);
        var x = Torch.Randn([4, 1, 12, 12], generator: g);
        var y = Torch.From(new long[] { 0, 1, 0, 1 }, 4);
        var phi = model.Parameters.Select(p => p.Detach().To(ScalarType.Float64).RequiresGrad_()).ToArray();
        var v = phi.Select(p => Torch.Randn(p.Shape, generator: g).To(ScalarType.Float64)).ToArray();
        var objective = new Objective(false);
        Tensor Loss(IReadOnlyList<Tensor> w) => objective.Loss(model.Forward(x.To(ScalarType.Float64), w), y);
        var grads = Grad(Loss(phi), phi, createGraph: true);
        var vhv = Torch.Grad([grads.Select((gr, k) => (gr * v[k]).Sum()).Aggregate((a, b) => a + b)], phi)
            .Select((hv, k) => (hv! * v[k]).Sum().Item()).Sum();
        double Directional(double eps)
        {
            var moved = phi.Select((p, k) => (p.Detach() + eps * v[k]).RequiresGrad_()).ToArray();
            return Grad(Loss(moved), moved).Select((gr, k) => (gr * v[k]).Sum().Item()).Sum();
        }
        const double h = 1e-5;
        var fd = (Directional(h) - Directional(-h)) / (2 * h);
        Assert.True(Math.Abs(vhv - fd) < 1e-4 * (1 + Math.Abs(fd)), $"vᵀHv {vhv}, finite differences {fd}");
    }

    [Fact]
    public void Block_conjugate_gradient_solves_each_block_as_if_alone()
    {
        // Two 2×2 blocks of a block-diagonal SPD matrix; two iterations solve a 2×2 system exactly.
        double[,] a1 = { { 4, 1 }, { 1, 3 } }, a2 = { { 2, -1 }, { -1, 5 } };
        double[] Product(double[] v) => [a1[0, 0] * v[0] + a1[0, 1] * v[1], a1[1, 0] * v[0] + a1[1, 1] * v[1],
            a2[0, 0] * v[2] + a2[0, 1] * v[3], a2[1, 0] * v[2] + a2[1, 1] * v[3]];
        var (x, residuals) = ConjugateGradient.Solve(Product, [1, 2, 3, -1], iterations: 2, tolerance: 0, blocks: 2);
        Assert.Equal(Solve(a1, [1, 2]), x[..2], new ToleranceComparer(1e-12));
        Assert.Equal(Solve(a2, [3, -1]), x[2..], new ToleranceComparer(1e-12));
        Assert.All(residuals, r => Assert.True(r < 1e-12));
        // One iteration on the blocks together equals one on each alone (its own step size per block).
        var (together, _) = ConjugateGradient.Solve(Product, [1, 2, 3, -1], iterations: 1, tolerance: 0, blocks: 2);
        var (first, _) = ConjugateGradient.Solve(v => Product([.. v, 0, 0])[..2], [1, 2], iterations: 1, tolerance: 0);
        var (second, _) = ConjugateGradient.Solve(v => Product([0, 0, .. v])[2..], [3, -1], iterations: 1, tolerance: 0);
        Assert.Equal(first.Concat(second).ToArray(), together);
    }

    [Fact]
    public void Two_inner_steps_descend_the_support_loss_plus_the_proximal_pull_toward_theta()
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        var model = Tiny([]);
        using var imaml = new Imaml(Tiny([]), new Objective(false), innerLr: 0.3, innerSteps: 2, testInnerSteps: 2, Lambda, cgSteps: 2);
        var theta = model.Parameters.Select(p => p.Detach()).ToArray();
        // Step 1 starts at φ = θ, where the pull is zero; step 2 adds λ(φ − θ).
        var g0 = Grad(new Objective(false).Loss(model.Forward(task.SupportX, model.Parameters), task.SupportY), model.Parameters);
        var phi1 = theta.Select((t, i) => (t - 0.3 * g0[i]).Detach().RequiresGrad_()).ToArray();
        var g1 = Grad(new Objective(false).Loss(model.Forward(task.SupportX, phi1), task.SupportY), phi1);
        var phi2 = phi1.Select((p, i) => p - 0.3 * (g1[i] + Lambda * (p - theta[i]))).ToArray();
        var adapted = imaml.Adapt(task.SupportX, task.SupportY, 2, createGraph: false);
        for (var i = 0; i < phi2.Length; i++) Close(phi2[i], adapted[i]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_inner_loop_keeps_no_graph_and_no_tensors_whatever_its_length(bool createGraph)
    {
        using var scope = Torch.NewScope();
        var task = TinyTask();
        using var imaml = new Imaml(Tiny([8]), new Objective(false), innerLr: 0.1, innerSteps: 1, testInnerSteps: 1, Lambda, cgSteps: 2);
        long Footprint(int steps)
        {
            // The tensors left alive in the caller's scope (the process-wide count moves with other tests).
            using var inner = Torch.NewScope();
            var phi = imaml.Adapt(task.SupportX, task.SupportY, steps, createGraph);
            // Nothing the adapted weights hold leads back to θ or to earlier steps: they are constants.
            Assert.All(phi, w => Assert.False(w.RequiresGrad));
            return inner.Count;
        }
        Assert.Equal(Footprint(2), Footprint(40));
    }

    [Fact]
    public void A_meta_batch_of_tasks_gets_the_sum_of_their_own_implicit_gradients()
    {
        using var scope = Torch.NewScope();
        var tasks = new[] { TinyTask(11), TinyTask(12), TinyTask(13) };
        using var imaml = new Imaml(Tiny([4]), new Objective(false), innerLr: 0.3, innerSteps: 4, testInnerSteps: 4, Lambda, cgSteps: 3);
        var perTask = tasks.Select(t => Flat(imaml.TaskGradient(t, 1.0).Gradients)).ToArray();
        var batch = new Episode(Torch.Stack([.. tasks.Select(t => t.SupportX)]), Torch.Stack([.. tasks.Select(t => t.SupportY)]),
            Torch.Stack([.. tasks.Select(t => t.QueryX)]), Torch.Stack([.. tasks.Select(t => t.QueryY)]));
        var batched = Flat(imaml.TaskGradient(batch, 1.0).Gradients);
        for (var j = 0; j < batched.Length; j++)
        {
            var sum = perTask.Sum(p => p[j]);
            Assert.True(Math.Abs(batched[j] - sum) < 1e-5 * (1 + Math.Abs(sum)), $"entry {j}: batched {batched[j]}, per-task sum {sum}");
        }
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance;
        public int GetHashCode(double v) => 0;
    }
}

/// <summary>iMAML through the CLI: training logs the CG residual with every iteration.</summary>
[Collection(ProcessWideCollection.Name)]
public class ImamlTrainingTests
{
    [Fact]
    public void Training_logs_the_conjugate_gradient_residual_of_every_iteration()
    {
        var (dir, path) = TestConfigs.Write(TestConfigs.TinySinusoid.Replace("name: maml", "name: imaml\n  inner_steps: 3\n  cg_steps: 4\n  inner_lr: 0.01"));
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", path, "--out", run);
        Assert.True(code == 0, err);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        var column = Array.IndexOf(lines[0].Split(','), "cg_residual");
        Assert.True(column >= 0, lines[0]);
        var residuals = lines.Skip(1).Select(l => double.Parse(l.Split(',')[column], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(2, residuals.Length);
        // A relative residual: 0 when CG solved the system, about 1 or more when it did not get far.
        Assert.All(residuals, r => Assert.True(r >= 0 && double.IsFinite(r), $"residual {r}"));
    }

    [Fact]
    public void A_resumed_run_ends_bit_identical_to_an_uninterrupted_one_residuals_included()
    {
        var (dir, path) = TestConfigs.Write(TestConfigs.TinySinusoid.Replace("name: maml", "name: imaml\n  inner_steps: 3\n  cg_steps: 4\n  inner_lr: 0.01")
            + "\ncheckpoint:\n  interval: 2\n");
        ResumeCheck.AssertResumedEqualsStraight(dir, path);
    }
}
