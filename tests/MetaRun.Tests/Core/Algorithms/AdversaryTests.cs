using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;

namespace MetaRun.Tests.Algorithms;

/// <summary>FGSM and PGD against hand-computed gradients, and the attack options' checks.</summary>
public class AdversaryTests
{
    private static float[] Values(Tensor t) => t.Detach().Contiguous().ToArray<float>();

    /// <summary>Images [n, 1, 2, 3] with pixels in [0.3, 0.7] of the range, stored as byte·scale + offset.</summary>
    private static Tensor Images(int n, float scale, float offset, ulong seed)
    {
        using var g = new Generator(seed);
        return (Torch.Rand([n, 1, 2, 3], generator: g) * 0.4 + 0.3) * (255 * scale) + offset;
    }

    [Theory]
    [InlineData(1f / 255, 0f, 0.1)]          // inputs are pixels in [0, 1]: one unit is 1
    [InlineData(2f / 255, -1f, 0.05)]        // inputs normalised to [−1, 1]: one unit is 2
    public void FgsmMovesEveryInteriorPixelByEpsilonAlongTheSignOfTheLossGradient(float scale, float offset, double epsilon)
    {
        using var scope = Torch.NewScope();
        var x = Images(4, scale, offset, 3);
        var y = Torch.From(new long[] { 0, 2, 1, 2 }, 4);
        using var g = new Generator(9);
        var w = Torch.Randn([6, 3], generator: g);
        Tensor Logits(Tensor input) => input.Reshape(4, 6).MatMul(w);
        var pixels = new PixelSpace([scale], [offset]);
        var adv = pixels.Perturb(Logits, x, y, new Objective(false), new Attack(AttackKind.Fgsm, epsilon));

        // By hand: the mean cross-entropy's gradient in x is (softmax − one-hot) Wᵀ / n.
        var p = F.Softmax(Logits(x), 1);
        var onehot = y.Unsqueeze(1).Eq(Torch.Arange(3).Unsqueeze(0)).To(ScalarType.Float32);
        var sign = Values((p - onehot).MatMul(w.Transpose(0, 1)).Sign());
        var (a, c) = (Values(adv), Values(x.Reshape(4, 6)));
        var unit = 255 * scale;
        for (var i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - (c[i] + epsilon * unit * sign[i])) < 1e-5, $"pixel {i}: {a[i]} vs {c[i]} + ε·{sign[i]}");
        // The stated L∞ norm, in pixel units.
        var linf = a.Zip(c, (u, v) => Math.Abs(u - v)).Max() / unit;
        Assert.Equal(epsilon, linf, 5);
    }

    [Fact]
    public void FgsmAndPgdStayInTheEpsilonBallAndTheValidPixelRangeAndPgdRepeatsFromItsSeed()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(4);
        // Pixels at both ends of the range too: a step outward must be clipped.
        var x = (Torch.Rand([5, 1, 2, 3], generator: g) * 1.4 - 0.2).Clamp(0, 1);
        var y = Torch.From(new long[] { 0, 1, 0, 1, 0 }, 5);
        var w = Torch.Randn([6, 2], generator: g);
        Tensor Logits(Tensor input) => input.Reshape(5, 6).MatMul(w);
        var pixels = new PixelSpace([1f / 255], [0f]);
        var objective = new Objective(false);
        var clean = objective.Loss(Logits(x), y).Item();
        foreach (var attack in new[] { new Attack(AttackKind.Fgsm, 0.15), new Attack(AttackKind.Pgd, 0.15, 7) })
        {
            using var start = new Generator(21);
            var adv = pixels.Perturb(Logits, x, y, objective, attack, start);
            var (a, c) = (Values(adv), Values(x));
            Assert.All(a, v => Assert.InRange(v, 0f, 1f));
            Assert.All(a.Zip(c, (u, v) => Math.Abs(u - v)), d => Assert.True(d <= 0.15 + 1e-6, $"moved {d}"));
            Assert.True(objective.Loss(Logits(adv), y).Item() > clean, $"{attack} did not raise the loss");
        }
        using (var s1 = new Generator(5))
        using (var s2 = new Generator(5))
            Assert.Equal(Values(pixels.Perturb(Logits, x, y, objective, new Attack(AttackKind.Pgd, 0.1, 3), s1)),
                Values(pixels.Perturb(Logits, x, y, objective, new Attack(AttackKind.Pgd, 0.1, 3), s2)));
    }

    [Theory]
    [InlineData("fgsm", 0.0, null, "--epsilon")]
    [InlineData("fgsm", 0.1, 3, "--steps")]
    [InlineData("pgd", 1.5, null, "--epsilon")]
    [InlineData("cw", 0.1, null, "--attack")]
    public void ABadAttackIsOneLineNamingTheOption(string kind, double epsilon, int? steps, string named)
    {
        var e = Assert.Throws<ConfigException>(() => Attack.Parse(kind, epsilon, steps));
        Assert.StartsWith(named, e.Message);
    }
}
