using System.Runtime.InteropServices;
using LibTorch;

namespace MetaRun.Tests.LibTorch;

/// <summary>
/// Tests that read process-wide counters (Torch.LiveTensors, RSS) or change libtorch's process-wide
/// settings (Torch.Threads) run in this collection: xunit runs it on its own, after every parallel
/// collection, so no other test allocates or computes meanwhile.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchSerialCollection
{
    public const string Name = "Torch (serial: live-tensor and memory counters, threads)";
}

internal static class TestSupport
{
    /// <summary>A float64 CPU tensor from managed values; an empty shape makes a scalar.</summary>
    public static Tensor F64(double[] data, params long[] shape) =>
        Torch.FromBytes(MemoryMarshal.AsBytes(data.AsSpan()), shape, ScalarType.Float64);

    public static Tensor F64(params double[] data) => F64(data, data.Length);

    public static Tensor I64(params long[] data) => Torch.From(data);

    public static double[] D(this Tensor t) => t.ToArray<double>();

    /// <summary>Resident set size of this process in bytes (VmRSS from /proc/self/status).</summary>
    public static long RssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith("VmRSS:", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[1]) * 1024;
        }
        throw new InvalidOperationException("no VmRSS line in /proc/self/status");
    }

    public static void AllClose(double[] expected, double[] actual, double tol = 1e-12, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol * (1 + Math.Abs(expected[i])),
                $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
    }
}
