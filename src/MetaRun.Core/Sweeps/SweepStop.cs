using System.Runtime.InteropServices;

namespace MetaRun.Sweeps;

/// <summary>
/// Stopping a sweep in two steps: the first SIGINT or SIGTERM asks each running `train` child to
/// finish its step and save checkpoints/last (the sweep waits for them); a second one kills the
/// children at once.
/// </summary>
public sealed class SweepStop : IDisposable
{
    private readonly CancellationTokenSource requested = new();
    private readonly CancellationTokenSource now = new();
    private readonly List<PosixSignalRegistration> registrations = [];
    private int signals;

    /// <summary>Set by the first stop: start nothing new, ask the children to save and stop.</summary>
    public CancellationToken Requested => requested.Token;

    /// <summary>Set by the second: kill the children.</summary>
    public CancellationToken Now => now.Token;

    public bool IsRequested => requested.IsCancellationRequested;

    /// <summary>A stop driven by this process's SIGINT and SIGTERM; <paramref name="say"/> tells the user what each signal does.</summary>
    public static SweepStop OnSignals(Action<string> say)
    {
        var stop = new SweepStop();
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            stop.registrations.Add(PosixSignalRegistration.Create(signal, c =>
            {
                c.Cancel = true;
                var name = c.Signal == PosixSignal.SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)";
                say(stop.Signal()
                    ? $"{name}: letting the running runs finish their step and save checkpoints/last; send it again to stop them at once"
                    : $"{name} again: stopping the runs now; each resumes from its last saved checkpoint");
            }));
        return stop;
    }

    /// <summary>One stop; true for the first (save and stop), false after (at once).</summary>
    public bool Signal()
    {
        if (Interlocked.Increment(ref signals) == 1)
        {
            requested.Cancel();
            return true;
        }
        now.Cancel();
        return false;
    }

    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
        requested.Dispose();
        now.Dispose();
    }
}
