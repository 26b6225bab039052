namespace MetaRun.Algorithms;

public enum AttackKind { Fgsm, Pgd }

/// <summary>
/// An L∞ attack on a classifier's inputs. <paramref name="Epsilon"/> is in pixel units: a
/// fraction of the image's 0–255 range, whatever the data set's normalisation, so ε = 0.1 means
/// the same on Omniglot and on a folder of photos.
///   FGSM (Goodfellow, Shlens and Szegedy 2015): x' = clip(x + ε · sign ∇x L(x, y))
///   PGD (Madry, Makelov, Schmidt, Tsipras and Vladu 2018): a uniform random start in the ε-ball,
///   then <paramref name="Steps"/> steps x ← Π(x + a · sign ∇x L), a = 2.5 ε / steps, Π the
///   projection onto the ε-ball around the clean x and the valid pixel range.
/// </summary>
public sealed record Attack(AttackKind Kind, double Epsilon, int Steps = 1)
{
    public const int DefaultPgdSteps = 10;

    /// <summary>Madry et al.'s step: 2.5 ε / steps lets the iterates cross the ball from any start.</summary>
    public double StepSize => Kind == AttackKind.Fgsm ? Epsilon : 2.5 * Epsilon / Steps;

    public string Name => Kind == AttackKind.Fgsm ? "fgsm" : "pgd";

    public override string ToString() => Kind == AttackKind.Fgsm ? $"FGSM (ε = {Epsilon:0.###})" : $"PGD (ε = {Epsilon:0.###}, {Steps} steps)";

    /// <summary>The attack a command line names; a bad combination is one line naming the option.</summary>
    public static Attack Parse(string kind, double epsilon, int? steps)
    {
        if (!(epsilon > 0 && epsilon <= 1)) throw new ConfigException($"--epsilon: {epsilon} is not in (0, 1]; ε is a fraction of the pixel range (0.1 = 25.5 of 255 levels)");
        return kind switch
        {
            "fgsm" when steps is not null and not 1 => throw new ConfigException("--steps: FGSM takes exactly one step; use --attack pgd for several"),
            "fgsm" => new Attack(AttackKind.Fgsm, epsilon),
            "pgd" when steps is < 1 => throw new ConfigException($"--steps: {steps} must be at least 1"),
            "pgd" => new Attack(AttackKind.Pgd, epsilon, steps ?? DefaultPgdSteps),
            _ => throw new ConfigException($"--attack: unknown attack '{kind}' (known: fgsm, pgd)"),
        };
    }
}
