using LibTorch;

namespace MetaRun.Tests.Algorithms;

/// <summary>Autograd's gradient of a learner's outer loss against central finite differences, entry by entry.</summary>
internal static class FiniteDifferences
{
    /// <summary>
    /// Checks the first <paramref name="perTensor"/> entries of every parameter: (loss(p + h) −
    /// loss(p − h)) / 2h against <paramref name="analytic"/> within absTol + relTol·|numeric|,
    /// restoring each entry. Returns how many entries had a sizeable gradient (|g| > 1e-4), so a
    /// test can refuse a check of zeros against zeros.
    /// </summary>
    public static int Check(IReadOnlyList<Tensor> parameters, IReadOnlyList<string> names, IReadOnlyList<Tensor?> analytic, Func<double> loss,
        double h, double absTol, double relTol, int perTensor = 3)
    {
        var sizeable = 0;
        for (var k = 0; k < parameters.Count; k++)
        {
            var expected = analytic[k]!.Detach().Contiguous().ToArray<float>();
            using var original = parameters[k].Detach().Clone();
            for (var e = 0; e < Math.Min(perTensor, expected.Length); e++)
            {
                // Each loss from the original values plus delta, and the original restored exactly
                // after: steps of ±h in float32 do not add back to zero, and a check that drifts
                // the weights it has passed can land on a kink of ReLU or batch norm further on.
                double LossWith(double delta)
                {
                    using (Torch.NoGrad()) parameters[k].CopyFrom(original).Flatten().Narrow(0, e, 1).Add_(Torch.Scalar((float)delta));
                    using var scope = Torch.NewScope();
                    return loss();
                }
                var (plus, minus) = (LossWith(h), LossWith(-h));
                using (Torch.NoGrad()) parameters[k].CopyFrom(original);
                var numeric = (plus - minus) / (2 * h);
                Assert.True(Math.Abs(numeric - expected[e]) <= absTol + relTol * Math.Abs(numeric), $"{names[k]}[{e}]: finite differences {numeric}, autograd {expected[e]}");
                if (Math.Abs(expected[e]) > 1e-4) sizeable++;
            }
        }
        return sizeable;
    }
}
