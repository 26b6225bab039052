namespace MetaRun.Training;

/// <summary>
/// How a supervisor (a sweep runner, a Slurm array task) asks its `metarun train` child to stop
/// and save: by writing "stop" to the child's standard input, or by going away (its end of the
/// pipe closes). A supervised child ignores SIGINT and SIGTERM itself: Ctrl-C in a terminal and
/// scancel signal the supervisor and the child together, and a child that counted both its own
/// signal and the one forwarded to it would take the second as "stop at once" and lose the
/// iterations since its last checkpoint.
/// </summary>
public static class SupervisedStop
{
    /// <summary>Set to 1 in the environment of a child whose standard input is its supervisor's pipe.</summary>
    public const string Variable = "METARUN_SUPERVISED";

    /// <summary>The line a supervisor writes to ask for a stop.</summary>
    public const string StopLine = "stop";

    public static bool Active => Environment.GetEnvironmentVariable(Variable) == "1";

    /// <summary>
    /// Watches standard input on a background thread and calls <paramref name="onStop"/> once, when
    /// the supervisor writes <see cref="StopLine"/> or its end of the pipe closes.
    /// </summary>
    public static void Watch(Action onStop)
    {
        var thread = new Thread(() =>
        {
            try
            {
                string? line;
                while ((line = Console.In.ReadLine()) != null)
                    if (line.Trim() == StopLine) break;
            }
            catch (IOException) { }
            catch (ObjectDisposedException) { }
            onStop();
        }) { IsBackground = true, Name = "supervisor stop" };
        thread.Start();
    }
}
