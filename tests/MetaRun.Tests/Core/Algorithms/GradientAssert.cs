using LibTorch;

namespace MetaRun.Tests.Algorithms;

internal static class GradientAssert
{
    /// <summary>
    /// The same parameters have gradients in both lists, and every entry agrees to
    /// <paramref name="tolerance"/> times the largest entry of <paramref name="expected"/>
    /// (a relative test per entry would fail on entries that are zero in exact arithmetic).
    /// </summary>
    public static void AgreeToScale(IReadOnlyList<Tensor?> expected, IReadOnlyList<Tensor?> actual, double tolerance, string expectedName, string actualName)
    {
        Assert.Equal(expected.Count, actual.Count);
        var scale = expected.Where(t => t != null).Max(t => t!.ToArray<float>().Max(v => Math.Abs(v)));
        Assert.True(scale > 0);
        for (var k = 0; k < expected.Count; k++)
        {
            Assert.Equal(expected[k] == null, actual[k] == null);
            if (expected[k] == null) continue;
            var (e, g) = (expected[k]!.ToArray<float>(), actual[k]!.ToArray<float>());
            for (var i = 0; i < e.Length; i++)
                Assert.True(Math.Abs(e[i] - g[i]) <= tolerance * scale, $"gradient {k}, element {i}: {expectedName} {e[i]}, {actualName} {g[i]} (largest entry {scale})");
        }
    }
}
