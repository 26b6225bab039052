using System.Collections.Concurrent;
using System.Diagnostics;

namespace MetaRun.Training;

/// <summary>
/// Accumulates time spent in named phases (inner loop, outer gradient, …) across threads, for
/// the benchmark's breakdown. Off unless enabled, and then a timestamp pair per phase.
/// </summary>
public static class PhaseClock
{
    private static readonly ConcurrentDictionary<string, long> Ticks = new();

    public static bool Enabled { get; set; }

    public static Phase Time(string name) => new(Enabled ? name : null);

    public static IReadOnlyDictionary<string, double> SecondsAndReset()
    {
        var result = Ticks.ToDictionary(kv => kv.Key, kv => kv.Value / (double)Stopwatch.Frequency);
        Ticks.Clear();
        return result;
    }

    public readonly struct Phase : IDisposable
    {
        private readonly string? name;
        private readonly long start;

        internal Phase(string? name)
        {
            this.name = name;
            start = name == null ? 0 : Stopwatch.GetTimestamp();
        }

        public void Dispose()
        {
            if (name == null) return;
            var elapsed = Stopwatch.GetTimestamp() - start;
            Ticks.AddOrUpdate(name, elapsed, (_, t) => t + elapsed);
        }
    }
}
