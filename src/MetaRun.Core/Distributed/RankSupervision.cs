using System.Diagnostics;

namespace MetaRun.Distributed;

/// <summary>
/// Ties the ranks `--nproc` starts to their supervisor. Each rank's standard input is a pipe from
/// the supervisor: a line "stop CODE" asks the rank to stop at its next safe point (the
/// supervisor got SIGINT or SIGTERM and passes it on, once); end of file means the supervisor
/// died in some way (kill -9 included): the kernel closed its end, and the rank kills itself. A
/// rank left behind would hold the run folder's lock and wait on collectives forever.
/// (PR_SET_PDEATHSIG would not do: it fires when the thread that started the child exits,
/// and .NET starts processes from whichever thread asks.)
/// </summary>
public static class RankSupervision
{
    /// <summary>Set to 1 in each rank's environment by the supervisor.</summary>
    public const string Variable = "METARUN_RANK_OF_SUPERVISOR";

    /// <summary>What the supervisor writes to ask for a stop, followed by the exit code to stop with (130, 143).</summary>
    public const string StopLine = "stop";

    private static readonly object Gate = new();
    private static Action<int>? onStop;
    private static int? stopCode;

    /// <summary>Whether this process is a rank of a --nproc supervisor (its signals come through the supervisor).</summary>
    public static bool Active => Environment.GetEnvironmentVariable(Variable) == "1";

    /// <summary>
    /// Calls <paramref name="stop"/> (with the exit code to stop with) once the supervisor asks for
    /// a stop, at once if it already has. Without a subscriber a stop request ends the process:
    /// nothing of its work needs saving.
    /// </summary>
    public static void OnStop(Action<int> stop)
    {
        int? code;
        lock (Gate)
        {
            onStop = stop;
            code = stopCode;
        }
        if (code is { } c) stop(c);
    }

    /// <summary>In a rank started by --nproc: watches the supervisor's pipe for the rest of the process's life.</summary>
    public static void WatchIfSupervised()
    {
        if (!Active) return;
        var thread = new Thread(() =>
        {
            try
            {
                string? line;
                while ((line = Console.In.ReadLine()) != null)
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length != 2 || parts[0] != StopLine || !int.TryParse(parts[1], out var code)) continue;
                    Action<int>? handler;
                    lock (Gate)
                    {
                        stopCode ??= code;
                        handler = onStop;
                    }
                    if (handler == null) ExitNow.With(code);
                    handler(code);
                }
            }
            catch (IOException) { }
            // The supervisor is gone: nobody reads this rank's output or waits for its exit.
            Process.GetCurrentProcess().Kill();
        }) { IsBackground = true, Name = "supervisor watch" };
        thread.Start();
    }
}
