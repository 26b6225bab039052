using LibTorch;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Algorithms;

/// <summary>A learner whose predictions are distributions: a Gaussian mean and standard deviation per query output (regression).</summary>
public interface IPredictiveLearner
{
    /// <summary>The predictive mean and standard deviation of every query output, each shaped like the query targets.</summary>
    (Tensor Mean, Tensor Std) PredictiveDistribution(Episode task);
}

/// <summary>
/// Conditional Neural Process (Garnelo, Rosenbaum, Maddison, Ramalho, Saxton, Shanahan, Teh,
/// Rezende and Eslami 2018). No inner loop and no gradient step at test time: an encoder h maps
/// each support pair to a representation, the representations are averaged (so the support set's
/// order never matters), and a decoder g reads the average beside each query:
///   regression:      r_i = h([x_i ; y_i]),  r = (1/n) Σ_i r_i,
///                    (μ_q, s_q) = g([x_q ; r]),  σ_q = 0.1 + 0.9 · softplus(s_q),
///                    loss = −(1/Q) Σ_q log N(y_q; μ_q, σ_q²)             (Gaussian likelihood)
///   classification:  r_c = (1/|S_c|) Σ_{i∈S_c} h(f(x_i))  per class (the paper's class-wise
///                    aggregation), logits_q = g([f(x_q) ; r_1 ; … ; r_N]),  cross-entropy,
/// with f the model's body (classification only; for regression the model is unused). h is three
/// ReLU layers of 128 and g two hidden ReLU layers of 128 then the output, the paper's 1-D
/// regression sizes; σ's floor of 0.1 is the authors' published code's. Evaluation scores the
/// mean's MSE (regression's headline, comparable with MAML's) or accuracy; eval also reports the
/// Gaussian NLL and the 90% interval's coverage (<see cref="IPredictiveLearner"/>). Weights
/// (PyTorch's U(±1/√fan_in) from the run's seed) are saved as "cnp.*".
/// </summary>
public sealed class Cnp : IMetaLearner, IPredictiveLearner, IModelBased
{
    private static readonly ParameterRole[] BodyRoles = [ParameterRole.Body, ParameterRole.BatchNorm];
    private readonly IModel model;
    private readonly Objective objective;
    private readonly Tensor[] encoder;
    private readonly Tensor[] decoder;
    private readonly List<Tensor> parameters = [];
    private readonly List<string> names = [];
    private readonly int ways;

    /// <summary>The registry's constructor: input and target widths from the family, the paper's layer sizes.</summary>
    public static Cnp From(AlgorithmContext c) =>
        new(c.Model, c.Objective, c.Seed, c.Family?.InputShape.Aggregate(1L, (a, b) => a * b) ?? c.Model.Features);

    /// <param name="inputs">Width of one regression input (the model's input); unused for classification, which reads the body's features.</param>
    public Cnp(IModel model, Objective objective, ulong seed, long inputs, int hidden = 128)
    {
        (this.model, this.objective) = (model, objective);
        if (!objective.IsRegression)
            foreach (var i in model.IndicesOf(BodyRoles))
            {
                parameters.Add(model.Parameters[i]);
                names.Add(model.ParameterNames[i]);
            }
        ways = objective.IsRegression ? 1 : (int)model.Head(model.Parameters).Weight.Size(0);
        using var g = new Generator(seed + 11);
        var x = objective.IsRegression ? inputs : model.Features;
        encoder = Mlp("cnp.encoder", [objective.IsRegression ? x + 1 : x, hidden, hidden, hidden], g);
        decoder = Mlp("cnp.decoder", [x + (objective.IsRegression ? hidden : ways * hidden), hidden, hidden, objective.IsRegression ? 2 : ways], g);
    }

    private Tensor[] Mlp(string name, long[] sizes, Generator g)
    {
        var layers = new List<Tensor>();
        for (var l = 0; l + 1 < sizes.Length; l++)
        {
            var bound = 1.0 / Math.Sqrt(sizes[l]);
            foreach (var (part, shape) in new[] { ("weight", new[] { sizes[l + 1], sizes[l] }), ("bias", new[] { sizes[l + 1] }) })
            {
                using var scope = Torch.NewScope();
                var t = (Torch.Rand(shape, ScalarType.Float32, Device.Cpu, g) * (2 * bound) - bound).To(model.Parameters[0].Device)
                    .MoveToOuterScope().DetachFromScope().RequiresGrad_();
                layers.Add(t);
                parameters.Add(t);
                names.Add($"{name}.layer{l}.{part}");
            }
        }
        return [.. layers];
    }

    public IReadOnlyList<Tensor> OuterParameters => parameters;
    public IReadOnlyList<string> OuterParameterNames => names;

    /// <summary>ReLU between layers, none after the last.</summary>
    private static Tensor Run(Tensor[] layers, Tensor x)
    {
        for (var l = 0; l < layers.Length / 2; l++)
        {
            x = F.Linear(x, layers[2 * l], layers[2 * l + 1]);
            if (l < layers.Length / 2 - 1) x = x.Relu();
        }
        return x;
    }

    /// <summary>The aggregated representation of a support set: regression [hidden] (the mean), classification [ways · hidden] (class means side by side).</summary>
    public Tensor Representation(Tensor supportX, Tensor supportY)
    {
        if (objective.IsRegression) return Run(encoder, Torch.Cat([supportX.Flatten(1), supportY], 1)).Mean(0);
        var r = Run(encoder, supportX);
        var oneHot = supportY.Unsqueeze(1).Eq(Torch.Arange(ways).To(supportY.Device).Unsqueeze(0)).To(r.DType);
        return (oneHot.Transpose(0, 1).MatMul(r) / oneHot.Sum(0).Clamp(min: 1).Unsqueeze(1)).Flatten();
    }

    /// <summary>The decoder's output for every query: regression [Q, 2] (μ, raw σ), classification [Q, ways] logits.</summary>
    private Tensor Decode(Tensor queryX, Tensor representation) =>
        Run(decoder, Torch.Cat([queryX.Flatten(1), representation.Unsqueeze(0).Expand(queryX.Size(0), representation.Size(0))], 1));

    /// <summary>Support and query inputs as the encoder and decoder read them: raw for regression, the body's embeddings (the whole episode at once, as every method) for classification.</summary>
    private (Tensor Support, Tensor Query) Inputs(Episode task)
    {
        if (objective.IsRegression) return (task.SupportX, task.QueryX);
        var nS = task.SupportX.Size(0);
        var all = model.Embed(Torch.Cat([task.SupportX, task.QueryX]), model.Parameters);
        return (all.Narrow(0, 0, nS), all.Narrow(0, nS, all.Size(0) - nS));
    }

    /// <summary>σ = 0.1 + 0.9 · softplus(s), softplus(s) = max(s, 0) + log(1 + e^−|s|) (stable for large |s|).</summary>
    public static Tensor Std(Tensor raw) => 0.1 + 0.9 * (raw.Relu() + (1 + (-raw.Abs()).Exp()).Log());

    public (Tensor Mean, Tensor Std) PredictiveDistribution(Episode task)
    {
        if (!objective.IsRegression) throw new InvalidOperationException("a classifier's predictions are class scores, not Gaussians");
        var (s, q) = Inputs(task);
        var out_ = Decode(q, Representation(s, task.SupportY));
        return (out_.Narrow(1, 0, 1), Std(out_.Narrow(1, 1, 1)));
    }

    /// <summary>Mean Gaussian negative log-likelihood of targets under (μ, σ).</summary>
    public static Tensor GaussianNll(Tensor mean, Tensor std, Tensor target) =>
        (0.5 * Math.Log(2 * Math.PI) + std.Log() + (target - mean).Square() / (2 * std.Square())).Mean();

    /// <summary>Query predictions: the predictive mean (regression) or the class logits.</summary>
    private Tensor Predict(Episode task)
    {
        if (objective.IsRegression) return PredictiveDistribution(task).Mean;
        var (s, q) = Inputs(task);
        return Decode(q, Representation(s, task.SupportY));
    }

    public TaskGradient TaskGradient(Episode task, double weight)
    {
        using var outer = PhaseClock.Time("outer gradient");
        Tensor loss, prediction;
        if (objective.IsRegression)
        {
            var (mean, std) = PredictiveDistribution(task);
            (loss, prediction) = (GaussianNll(mean, std, task.QueryY), mean);
        }
        else
        {
            prediction = Predict(task);
            loss = objective.Loss(prediction, task.QueryY);
        }
        var grads = Torch.Grad([loss * weight], OuterParameters, allowUnused: true);
        return new TaskGradient(grads, loss.Item(), objective.Accuracy(prediction, task.QueryY));
    }

    /// <summary>The query predictions and the support's representation; no gradient step is taken.</summary>
    public AdaptedTask AdaptTo(Episode task)
    {
        using var noGrad = Torch.NoGrad();
        var (s, _) = Inputs(task);
        return new AdaptedTask(Predict(task), [.. names.Zip(parameters, KeyValuePair.Create), KeyValuePair.Create("representation", Representation(s, task.SupportY))]);
    }

    /// <summary>The headline's loss: the mean's MSE for regression (as MAML's), cross-entropy for classification; accuracy.</summary>
    public TaskScore Evaluate(Episode task)
    {
        using var noGrad = Torch.NoGrad();
        return objective.Score(Predict(task), task.QueryY);
    }

    public Func<Tensor, Tensor> Predictor(Episode task) => x => Predict(task with { QueryX = x });

    public void Dispose()
    {
        foreach (var t in encoder.Concat(decoder)) t.Dispose();
        model.Dispose();
        GC.SuppressFinalize(this);
    }
}
