using LibTorch;
using MetaRun.Data;

namespace MetaRun.Algorithms;

/// <summary>
/// Where an image family's inputs may lie and what one pixel unit is in them: the families store
/// bytes and hand the model byte · scale + offset per channel, so a pixel-unit ε is
/// ε · 255 · |scale| in input units and the valid range is the image of [0, 255].
/// </summary>
public sealed class PixelSpace
{
    private readonly float[] low, high, unit;

    public PixelSpace(IReadOnlyList<float> scale, IReadOnlyList<float> offset)
    {
        var c = scale.Count;
        (low, high, unit) = (new float[c], new float[c], new float[c]);
        for (var i = 0; i < c; i++)
        {
            var (a, b) = (offset[i], 255 * scale[i] + offset[i]);
            (low[i], high[i], unit[i]) = (Math.Min(a, b), Math.Max(a, b), 255 * Math.Abs(scale[i]));
        }
    }

    /// <summary>The pixel space of an image family; anything else cannot be attacked in pixels (one line naming what asked).</summary>
    public static PixelSpace Of(ITaskFamily? family, string who) => family is ImageTaskFamily f
        ? new PixelSpace(f.Scale, f.Offset)
        : throw new ConfigException($"{who}: adversarial examples are perturbed images; the {family?.Name ?? "given"} task family has no pixels (use omniglot, miniimagenet or folder)");

    public int Channels => unit.Length;

    /// <summary>[C, 1, 1] per-channel constants to broadcast over [N, C, H, W] inputs.</summary>
    private static Tensor PerChannel(float[] v, Tensor like) => Torch.From(v, v.Length, 1, 1).To(like.Device).To(like.DType);

    /// <summary>
    /// Adversarial versions of <paramref name="x"/> against <paramref name="logitsOf"/> (which must be
    /// differentiable in its input), with no graph: the result is a constant, as in FGSM training.
    /// PGD's random start draws from <paramref name="start"/>, so an episode's attack repeats.
    /// </summary>
    public Tensor Perturb(Func<Tensor, Tensor> logitsOf, Tensor x, Tensor y, Objective objective, Attack attack, Generator? start = null)
    {
        if (x.Dim != 4 || x.Size(1) != Channels)
            throw new ArgumentException($"attacks take [N, {Channels}, H, W] images, not {x}");
        using var grad = Torch.EnableGrad();
        var clean = x.Detach();
        var (lo, hi, u) = (PerChannel(low, x), PerChannel(high, x), PerChannel(unit, x));
        var radius = u * attack.Epsilon;
        var (floor, ceiling) = ((clean - radius).Maximum(lo), (clean + radius).Minimum(hi));
        var adv = clean;
        if (attack.Kind == AttackKind.Pgd)
            adv = (clean + (Torch.Rand(x.Shape, ScalarType.Float32, Device.Cpu, start).To(x.Device).To(x.DType) * 2 - 1) * radius).Maximum(floor).Minimum(ceiling);
        var step = u * attack.StepSize;
        for (var s = 0; s < attack.Steps; s++)
        {
            var input = adv.Detach().RequiresGrad_();
            var loss = objective.Loss(logitsOf(input), y);
            var g = Torch.Grad([loss], [input])[0]!;
            adv = (input.Detach() + g.Sign() * step).Maximum(floor).Minimum(ceiling);
        }
        return adv.Detach();
    }
}
