using System.Runtime.InteropServices;

namespace MetaRun.Training;

/// <summary>
/// SIGINT (Ctrl-C) and SIGTERM (what Slurm sends on preemption) as a request to stop at the next
/// safe point: the first signal cancels <see cref="Token"/>, whose holder finishes its current
/// step and saves; a second one exits at once with the signal's code (130 or 143).
/// </summary>
public sealed class GracefulStop : IDisposable
{
    private readonly CancellationTokenSource stop = new();
    private readonly Action<string> say;
    private readonly string finishing;
    private readonly PosixSignalRegistration sigint, sigterm;
    private int signalled;

    /// <param name="say">Where the one-line notices go (the command prints them on stderr).</param>
    /// <param name="finishing">What the first signal lets the process do before it stops, e.g. "finishing this iteration and saving checkpoints/last".</param>
    public GracefulStop(Action<string> say, string finishing)
    {
        (this.say, this.finishing) = (say, finishing);
        sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => OnSignal(c, 130));
        sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => OnSignal(c, 143));
        // Under a supervisor (a sweep, --nproc) the stop request comes through it, once (see
        // SupervisedStop, RankSupervision): the supervisor says what it has to.
        if (SupervisedStop.Active)
            SupervisedStop.Watch(() => { if (Interlocked.CompareExchange(ref signalled, 143, 0) == 0) stop.Cancel(); });
        else if (Distributed.RankSupervision.Active)
            Distributed.RankSupervision.OnStop(code => { if (Interlocked.CompareExchange(ref signalled, code, 0) == 0) stop.Cancel(); });
    }

    private static bool Supervised => SupervisedStop.Active || Distributed.RankSupervision.Active;

    public CancellationToken Token => stop.Token;

    /// <summary>
    /// The exit code of a stopped process: its signal's; a rank stopped because another rank was
    /// signalled (the stop travels with the all-reduce) takes SIGTERM's.
    /// </summary>
    public int ExitCode => signalled != 0 ? signalled : 143;

    private void OnSignal(PosixSignalContext context, int code)
    {
        context.Cancel = true;
        // Supervised: the supervisor got the same signal (a terminal's Ctrl-C and scancel signal the
        // whole process group) and asks once; counting this one too would make its request the
        // second signal, "stop at once", and lose the iterations since the last checkpoint.
        if (Supervised) return;
        var name = context.Signal == PosixSignal.SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)";
        if (Interlocked.CompareExchange(ref signalled, code, 0) == 0)
        {
            say($"{name}: {finishing}; send it again to stop at once");
            stop.Cancel();
            return;
        }
        say($"{name} again: stopping now; the run resumes from its last checkpoint");
        ExitNow.With(code);
    }

    public void Dispose()
    {
        sigint.Dispose();
        sigterm.Dispose();
        stop.Dispose();
    }
}
