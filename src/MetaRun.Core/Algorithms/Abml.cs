using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>
/// Amortized Bayesian Meta-Learning (Ravi and Beatson 2019, Algorithm 1). The outer parameters
/// are a Gaussian over every weight of the network, θ = (μ_θ, log σ_θ): the prior p_θ of each
/// task's weights and the point its posterior starts from. For a task with support S (n
/// examples) and query Q:
///   φ⁰ = (μ, log σ) ← θ                                               (posterior at the prior)
///   φᵏ⁺¹ ← φᵏ − α ∇φ [ −(1/n) log p(S | μ_φ + σ_φ ∘ ε) + (β/n) KL(q_φᵏ ‖ p_θ) ],  ε ∼ N(0, I),  k < K
///   L(θ) = (1/M) Σ_m −(1/|Q|) log p(Q | w_m) + (β/n) KL(q_φᴷ ‖ p_θ),  w_m = μ_φᴷ + σ_φᴷ ∘ ε_m
/// (one reparameterised sample per inner step, M = samples for the query), and the outer step
/// descends ∇θ of the mean over tasks of L, through the inner loop as MAML does. Predictions
/// average the softmax over test_samples weights drawn from the adapted posterior.
/// β (kl_weight) scales the KL as the paper's own experiments do; the paper's hyperprior on θ
/// is left out (its weight, 1/tasks, vanishes with the unbounded task stream of a task family).
/// For regression the likelihood is a Gaussian whose noise scale is one more learned outer
/// parameter, and the prediction a Gaussian (<see cref="IPredictiveGaussian"/>).
/// </summary>
public sealed class Abml : IMetaLearner, IIterationAware, IPredictiveGaussian
{
    /// <summary>σ of the prior before training: small, so the first posteriors are nearly MAML's point weights.</summary>
    public const double InitialSigma = 0.01;

    private readonly IModel model;
    private readonly Objective objective;
    private readonly Tensor[] logSigma;
    private readonly Tensor? logNoise;
    private readonly double innerLr, klWeight;
    private readonly int innerSteps, testInnerSteps, samples, testSamples;
    private readonly ulong seed;
    private long iteration;

    public Abml(IModel model, Objective objective, double innerLr, int innerSteps, int testInnerSteps, int samples, int testSamples, double klWeight, ulong seed)
    {
        (this.model, this.objective, this.innerLr, this.innerSteps, this.testInnerSteps) = (model, objective, innerLr, innerSteps, testInnerSteps);
        (this.samples, this.testSamples, this.klWeight, this.seed) = (samples, testSamples, klWeight, seed);
        using var scope = Torch.NewScope();
        logSigma = [.. model.Parameters.Select(p => Torch.Full(p.Shape, Math.Log(InitialSigma), p.DType, p.Device).DetachFromScope().RequiresGrad_())];
        if (objective.IsRegression) logNoise = Torch.Zeros([1], ScalarType.Float32, model.Parameters[0].Device).DetachFromScope().RequiresGrad_();
    }

    /// <summary>The registry's constructor: its settings from the config.</summary>
    public static Abml From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Config.InnerLr, c.Config.InnerSteps, c.Config.EffectiveTestInnerSteps, c.Config.Samples, c.Config.TestSamples, c.Config.KlWeight, c.Seed);

    public IReadOnlyList<Tensor> OuterParameters => [.. model.Parameters, .. logSigma, .. logNoise is { } n ? new[] { n } : []];
    public IReadOnlyList<string> OuterParameterNames => [.. model.ParameterNames, .. model.ParameterNames.Select(n => "log_sigma." + n), .. logNoise != null ? new[] { "noise.log_std" } : []];

    public void SetIteration(long iteration) => this.iteration = iteration;

    // Evaluation draws its own noise, the same at every iteration: validation during training and
    // `eval` of the saved checkpoint score an episode with the same weight samples.
    private const long EvaluationNoise = -1;

    /// <summary>KL(N(μq, σq²) ‖ N(μp, σp²)) summed over every weight: Σ log σp − log σq + (σq² + (μq − μp)²) / 2σp² − ½.</summary>
    public static Tensor Kl(IReadOnlyList<Tensor> muQ, IReadOnlyList<Tensor> logSigmaQ, IReadOnlyList<Tensor> muP, IReadOnlyList<Tensor> logSigmaP)
    {
        Tensor? total = null;
        for (var i = 0; i < muQ.Count; i++)
        {
            var d = muQ[i] - muP[i];
            var term = (logSigmaP[i] - logSigmaQ[i] + ((logSigmaQ[i] * 2).Exp() + d * d) * (logSigmaP[i] * -2).Exp() * 0.5 - 0.5).Sum();
            total = total == null ? term : total + term;
        }
        return total!;
    }

    /// <summary>w = μ + σ ∘ ε with ε drawn from <paramref name="noise"/>.</summary>
    private Tensor[] Sample(IReadOnlyList<Tensor> mu, IReadOnlyList<Tensor> logS, Generator noise) =>
        [.. mu.Select((m, i) => m + logS[i].Exp() * Torch.Randn(m.Shape, m.DType, generator: noise).To(m.Device))];

    /// <summary>
    /// The support ELBO of one sample, per support example: −(1/n) log p(S | w) + (β/n) KL(q ‖ p_θ)
    /// — the loss the inner loop descends (exposed for the finite-difference test).
    /// </summary>
    public Tensor SupportLoss(Tensor x, Tensor y, IReadOnlyList<Tensor> mu, IReadOnlyList<Tensor> logS, Generator noise) =>
        Bayesian.NegativeLogLikelihood(objective, model.Forward(x, Sample(mu, logS, noise)), y, logNoise)
        + Kl(mu, logS, model.Parameters, logSigma) * (klWeight / x.Size(0));

    /// <summary>The posterior after <paramref name="steps"/> steps on the support ELBO, started at the prior.</summary>
    public (IReadOnlyList<Tensor> Mu, IReadOnlyList<Tensor> LogSigma) Adapt(Tensor x, Tensor y, int steps, bool createGraph, Generator noise)
    {
        IReadOnlyList<Tensor> mu = model.Parameters, logS = logSigma;
        for (var s = 0; s < steps; s++)
        {
            var loss = SupportLoss(x, y, mu, logS, noise);
            var grads = Torch.Grad([loss], [.. mu, .. logS], createGraph: createGraph);
            mu = [.. mu.Select((m, i) => m - innerLr * grads[i]!)];
            logS = [.. logS.Select((l, i) => l - innerLr * grads[mu.Count + i]!)];
        }
        return (mu, logS);
    }

    /// <summary>The task's outer loss L(θ) and the query outputs of its weight samples (what TaskGradient differentiates).</summary>
    public (Tensor Loss, Tensor[] Outputs) OuterLoss(Episode task)
    {
        using var noise = Bayesian.NoiseFor(seed, iteration, task.SupportX);
        (IReadOnlyList<Tensor> Mu, IReadOnlyList<Tensor> LogSigma) q;
        using (PhaseClock.Time("inner loop")) q = Adapt(task.SupportX, task.SupportY, innerSteps, createGraph: true, noise);
        using var phase = PhaseClock.Time("outer gradient");
        var outputs = Enumerable.Range(0, samples).Select(_ => model.Forward(task.QueryX, Sample(q.Mu, q.LogSigma, noise))).ToArray();
        var nll = outputs.Select(o => Bayesian.NegativeLogLikelihood(objective, o, task.QueryY, logNoise)).Aggregate((a, b) => a + b) / samples;
        return (nll + Kl(q.Mu, q.LogSigma, model.Parameters, logSigma) * (klWeight / task.SupportX.Size(0)), outputs);
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        var (loss, outputs) = OuterLoss(task);
        var grads = Torch.Grad([loss * weight], OuterParameters, allowUnused: true);
        using var noGrad = Torch.NoGrad();
        var prediction = Bayesian.Average(objective, outputs);
        return new TaskGradient(grads, objective.Loss(prediction, task.QueryY).Item(), objective.Accuracy(prediction, task.QueryY));
    }

    /// <summary>Query outputs of test_samples weights drawn from the adapted posterior, and that posterior.</summary>
    private (Tensor[] Outputs, IReadOnlyList<Tensor> Mu, IReadOnlyList<Tensor> LogSigma) Predict(Episode task, Tensor? queryX = null)
    {
        using var noise = Bayesian.NoiseFor(seed, EvaluationNoise, task.SupportX);
        var (mu, logS) = Adapt(task.SupportX, task.SupportY, testInnerSteps, createGraph: false, noise);
        (mu, logS) = ([.. mu.Select(m => m.Detach())], [.. logS.Select(l => l.Detach())]);
        var weights = Enumerable.Range(0, testSamples).Select(_ => Sample(mu, logS, noise)).ToArray();
        return ([.. weights.Select(w => model.Forward(queryX ?? task.QueryX, w))], mu, logS);
    }

    public AdaptedTask AdaptTo(Episode task)
    {
        var (outputs, mu, logS) = Predict(task);
        using var noGrad = Torch.NoGrad();
        return new AdaptedTask(Bayesian.Average(objective, outputs),
            [.. model.ParameterNames.Zip(mu, KeyValuePair.Create), .. model.ParameterNames.Select(n => "log_sigma." + n).Zip(logS, KeyValuePair.Create)]);
    }

    public TaskScore Evaluate(Episode task)
    {
        var logits = AdaptTo(task).Logits;
        using var noGrad = Torch.NoGrad();
        return objective.Score(logits, task.QueryY);
    }

    public Func<Tensor, Tensor> Predictor(Episode task)
    {
        using var noise = Bayesian.NoiseFor(seed, EvaluationNoise, task.SupportX);
        var (mu, logS) = Adapt(task.SupportX, task.SupportY, testInnerSteps, createGraph: false, noise);
        var weights = Enumerable.Range(0, testSamples).Select(_ => Sample([.. mu.Select(m => m.Detach())], [.. logS.Select(l => l.Detach())], noise)).ToArray();
        return x => Bayesian.Average(objective, [.. weights.Select(w => model.Forward(x, w))]);
    }

    public (Tensor Mean, Tensor Variance) PredictiveGaussian(Episode task)
    {
        var (outputs, _, _) = Predict(task);
        using var noGrad = Torch.NoGrad();
        return Bayesian.Gaussian(outputs, logNoise!);
    }

    public void Dispose()
    {
        foreach (var t in logSigma) t.Dispose();
        logNoise?.Dispose();
        model.Dispose();
        GC.SuppressFinalize(this);
    }
}
