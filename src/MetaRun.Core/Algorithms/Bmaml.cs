using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Bayesian MAML (Yoon, Kim, Dia, Kim, Bengio and Ahn 2018, Algorithm 2 with the Chaser loss).
/// The outer parameters are M particles Θ₀ = {θ₀ᵐ}, each a full set of the network's weights. A
/// task's posterior is approximated by moving them with Stein variational gradient descent:
///   θᵐ ← θᵐ + α φ(θᵐ),  φ(θ) = (1/M) Σⱼ [ k(θʲ, θ) ∇θʲ log p(D | θʲ) + ∇θʲ k(θʲ, θ) ]
/// with the RBF kernel k(a, b) = exp(−‖a − b‖² / h) and the median heuristic h = med² / log M (med
/// the median distance between particles, a constant of the step). For a task with support S and
/// query Q:
///   Θⁿ     = SVGDₙ(Θ₀; S)                  (the chaser: n steps on the support set)
///   Θⁿ⁺ˢ   = SVGDₛ(Θⁿ; S ∪ Q)              (the leader: s more steps with the query set too)
///   L(Θ₀)  = Σₘ ‖θⁿᵐ − stopgrad(θⁿ⁺ˢᵐ)‖²   (the Chaser loss; the leader is a fixed target)
/// and the outer step descends ∇Θ₀ of the mean over tasks of L, through the chaser's steps.
/// Predictions average the softmax of the particles after n steps on the support set.
/// log p(D | θ) is the per-example mean log-likelihood (a tempered posterior), so one step size
/// serves the support set and the larger support-plus-query set alike; no prior term beyond the
/// particles' initialisation. For regression the likelihood is a Gaussian whose noise scale is
/// a learned outer parameter, and the prediction a Gaussian (<see cref="IPredictiveGaussian"/>).
/// </summary>
public sealed class Bmaml : IMetaLearner, IPredictiveGaussian
{
    private readonly IModel model;
    private readonly Objective objective;
    private readonly Tensor[][] particles;   // [particle][weight]; particle 0 is the model's own parameters
    private readonly Tensor? logNoise;
    private readonly double innerLr;
    private readonly int innerSteps, testInnerSteps, chaserSteps;

    public Bmaml(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, int particleCount, int chaserSteps, ulong seed)
    {
        (this.model, this.objective, this.innerLr, this.innerSteps, this.testInnerSteps, this.chaserSteps) = (model, objective, innerLr, innerSteps, testInnerSteps, chaserSteps);
        using var scope = Torch.NewScope();
        using var g = new Generator(seed ^ 0x626D616D6CUL);
        // The others start from the model's initialisation perturbed by a tenth of each tensor's
        // scale: SVGD needs distinct particles, and its repulsion spreads them further.
        particles = [[.. model.Parameters], .. Enumerable.Range(1, particleCount - 1).Select(_ => model.Parameters.Select(p =>
        {
            using var noGrad = Torch.NoGrad();
            var scale = Math.Max(p.Square().Mean().Item() is var ms && ms > 0 ? Math.Sqrt(ms) : 0, 0.01) * 0.1;
            return (p + Torch.Randn(p.Shape, p.DType, generator: g).To(p.Device) * scale).DetachFromScope().RequiresGrad_();
        }).ToArray())];
        if (objective.IsRegression) logNoise = Torch.Zeros([1], ScalarType.Float32, model.Parameters[0].Device).DetachFromScope().RequiresGrad_();
    }

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Bmaml From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.Particles, c.Config.ChaserSteps, c.Seed);

    public IReadOnlyList<Tensor> OuterParameters => [.. particles.SelectMany(p => p), .. logNoise is { } n ? new[] { n } : []];
    public IReadOnlyList<string> OuterParameterNames =>
        [.. particles.SelectMany((_, m) => model.ParameterNames.Select(n => m == 0 ? n : $"particle{m}.{n}")), .. logNoise != null ? new[] { "noise.log_std" } : []];

    /// <summary>The particles' initial weights, particle by particle.</summary>
    public IReadOnlyList<IReadOnlyList<Tensor>> Particles => particles;

    /// <summary>
    /// One SVGD step on particles given ∇log p at each: θᵐ + α (1/M) Σⱼ [k(θʲ, θᵐ) gʲ − (2/h)(θʲ − θᵐ) k(θʲ, θᵐ)],
    /// h = med² / log M from the particles' current distances (a constant: no gradient through it).
    /// </summary>
    public static IReadOnlyList<Tensor>[] SvgdStep(IReadOnlyList<IReadOnlyList<Tensor>> theta, IReadOnlyList<IReadOnlyList<Tensor>> logpGrad, double stepSize)
    {
        var m = theta.Count;
        var flat = Torch.Stack([.. theta.Select(p => Torch.Cat([.. p.Select(w => w.Reshape(-1))]))]);          // [M, D]
        var diff = flat.Unsqueeze(1) - flat.Unsqueeze(0);                                                        // [i, j] = θⁱ − θʲ
        var sq = diff.Square().Sum(2);                                                                           // ‖θⁱ − θʲ‖²
        var h = Bandwidth(sq.Detach().To(Device.Cpu).To(ScalarType.Float64).ToArray<double>(), m);
        var k = (sq * (-1.0 / h)).Exp();                                                                         // k(θⁱ, θʲ), symmetric
        var result = new IReadOnlyList<Tensor>[m];
        for (var i = 0; i < m; i++)
        {
            var moved = new Tensor[theta[i].Count];
            for (var w = 0; w < moved.Length; w++)
            {
                Tensor? drive = null;
                for (var j = 0; j < m; j++)
                {
                    var kji = k[j][i];
                    // ∇θʲ k(θʲ, θⁱ) = −(2/h)(θʲ − θⁱ) k(θʲ, θⁱ)
                    var term = logpGrad[j][w] * kji - (theta[j][w] - theta[i][w]) * kji * (2.0 / h);
                    drive = drive == null ? term : drive + term;
                }
                moved[w] = theta[i][w] + drive! * (stepSize / m);
            }
            result[i] = moved;
        }
        return result;
    }

    /// <summary>The median heuristic: med² / log M, med the median distance between distinct particles (1 when they coincide or M = 1).</summary>
    public static double Bandwidth(double[] squaredDistances, int m)
    {
        var pairs = new List<double>();
        for (var i = 0; i < m; i++)
            for (var j = i + 1; j < m; j++) pairs.Add(squaredDistances[i * m + j]);
        if (pairs.Count == 0) return 1;
        pairs.Sort();
        var n = pairs.Count;
        var medianSq = n % 2 == 1 ? pairs[n / 2] : (Math.Sqrt(pairs[n / 2 - 1]) + Math.Sqrt(pairs[n / 2])) is var s ? s * s / 4 : 0;
        var h = medianSq / Math.Log(m);
        return h > 0 && double.IsFinite(h) ? h : 1;
    }

    /// <summary><paramref name="steps"/> SVGD steps from <paramref name="start"/> on the data (x, y); createGraph keeps them differentiable.</summary>
    public IReadOnlyList<Tensor>[] Svgd(IReadOnlyList<IReadOnlyList<Tensor>> start, Tensor x, Tensor y, int steps, bool createGraph)
    {
        var theta = start.ToArray();
        for (var s = 0; s < steps; s++)
        {
            var grads = theta.Select(p =>
            {
                var nll = Bayesian.NegativeLogLikelihood(objective, model.Forward(x, p), y, logNoise);
                return (IReadOnlyList<Tensor>)[.. Torch.Grad([nll], p, createGraph: createGraph).Select(g => -g!)];
            }).ToArray();
            theta = SvgdStep(theta, grads, innerLr);
        }
        return theta;
    }

    /// <summary>The Chaser loss Σₘ ‖chaserᵐ − leaderᵐ‖², the leader detached: a target, never differentiated.</summary>
    public static Tensor ChaserLoss(IReadOnlyList<IReadOnlyList<Tensor>> chaser, IReadOnlyList<IReadOnlyList<Tensor>> leader)
    {
        Tensor? total = null;
        for (var m = 0; m < chaser.Count; m++)
            for (var w = 0; w < chaser[m].Count; w++)
            {
                var term = (chaser[m][w] - leader[m][w].Detach()).Square().Sum();
                total = total == null ? term : total + term;
            }
        return total!;
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        IReadOnlyList<Tensor>[] chaser, leader;
        using (PhaseClock.Time("inner loop"))
        {
            chaser = Svgd(particles, task.SupportX, task.SupportY, innerSteps, createGraph: true);
            leader = Svgd(chaser.Select(p => (IReadOnlyList<Tensor>)[.. p.Select(w => w.Detach().RequiresGrad_())]).ToArray(),
                Torch.Cat([task.SupportX, task.QueryX]), Torch.Cat([task.SupportY, task.QueryY]), chaserSteps, createGraph: false);
        }
        using var phase = PhaseClock.Time("outer gradient");
        var loss = ChaserLoss(chaser, leader);
        // The noise scale moves the chaser only through the likelihood's gradient; its own query
        // likelihood is added so it is fitted directly too (regression only).
        Tensor? noiseFit = null;
        var outputs = chaser.Select(p => model.Forward(task.QueryX, p)).ToArray();
        if (logNoise != null)
        {
            var (mean, variance) = Bayesian.Gaussian([.. outputs.Select(o => o.Detach())], logNoise);
            var d = mean - task.QueryY;
            noiseFit = ((variance.Log() + d * d / variance) * 0.5).Mean();
        }
        var total = noiseFit == null ? loss : loss + noiseFit;
        var grads = Torch.Grad([total * weight], OuterParameters, allowUnused: true);
        using var noGrad = Torch.NoGrad();
        var prediction = Bayesian.Average(objective, outputs);
        return new TaskGradient(grads, objective.Loss(prediction, task.QueryY).Item(), objective.Accuracy(prediction, task.QueryY));
    }

    private IReadOnlyList<Tensor>[] Adapted(Episode task) =>
        [.. Svgd(particles, task.SupportX, task.SupportY, testInnerSteps, createGraph: false).Select(p => (IReadOnlyList<Tensor>)[.. p.Select(w => w.Detach())])];

    public AdaptedTask AdaptTo(Episode task)
    {
        var adapted = Adapted(task);
        using var noGrad = Torch.NoGrad();
        return new AdaptedTask(Bayesian.Average(objective, [.. adapted.Select(p => model.Forward(task.QueryX, p))]),
            [.. adapted.SelectMany((p, m) => model.ParameterNames.Zip(p, (n, w) => KeyValuePair.Create($"particle{m}.{n}", w)))]);
    }

    public TaskScore Evaluate(Episode task)
    {
        var logits = AdaptTo(task).Logits;
        using var noGrad = Torch.NoGrad();
        return objective.Score(logits, task.QueryY);
    }

    public Func<Tensor, Tensor> Predictor(Episode task)
    {
        var adapted = Adapted(task);
        return x => Bayesian.Average(objective, [.. adapted.Select(p => model.Forward(x, p))]);
    }

    public (Tensor Mean, Tensor Variance) PredictiveGaussian(Episode task)
    {
        var adapted = Adapted(task);
        using var noGrad = Torch.NoGrad();
        return Bayesian.Gaussian([.. adapted.Select(p => model.Forward(task.QueryX, p))], logNoise!);
    }

    public void Dispose()
    {
        foreach (var p in particles.Skip(1)) foreach (var t in p) t.Dispose();
        logNoise?.Dispose();
        model.Dispose();
        GC.SuppressFinalize(this);
    }
}
