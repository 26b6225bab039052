using System.Diagnostics;

namespace MetaRun.Distributed;

/// <summary>
/// Ties the ranks `--nproc` starts to their supervisor's life. Each rank's standard input is a
/// pipe from the supervisor, which nothing writes to: when the supervisor dies in any way
/// (kill -9 included), the kernel closes its end, the rank reads end-of-file and kills itself.
/// A rank left behind would hold the run folder's lock and wait on collectives forever.
/// (PR_SET_PDEATHSIG would not do: it fires when the thread that started the child exits,
/// and .NET starts processes from whichever thread asks.)
/// </summary>
public static class RankSupervision
{
    /// <summary>Set to 1 in each rank's environment by the supervisor.</summary>
    public const string Variable = "METARUN_RANK_OF_SUPERVISOR";

    /// <summary>In a rank started by --nproc: watches the supervisor's pipe for the rest of the process's life.</summary>
    public static void WatchIfSupervised()
    {
        if (Environment.GetEnvironmentVariable(Variable) != "1") return;
        var thread = new Thread(() =>
        {
            try
            {
                var stdin = Console.OpenStandardInput();
                var buffer = new byte[64];
                while (stdin.Read(buffer, 0, buffer.Length) > 0) { }
            }
            catch (IOException) { }
            // The supervisor is gone: nobody reads this rank's output or waits for its exit.
            Process.GetCurrentProcess().Kill();
        }) { IsBackground = true, Name = "supervisor watch" };
        thread.Start();
    }
}
