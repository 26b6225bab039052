using System.Diagnostics;

namespace MetaRun.Cli;

/// <summary>
/// How far an evaluation is (seconds for 600 MAML episodes, minutes under PGD): on a terminal a
/// line redrawn in place and erased at the end; in a log a line at each quarter, once the
/// evaluation has taken longer than <paramref name="quietFor"/> (a short one adds nothing to
/// its result or its one-line error).
/// </summary>
public sealed class EpisodeProgress(TextWriter output, bool live, TimeSpan quietFor) : IProgress<(int Done, int Total)>
{
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private int quarter;

    /// <summary>Progress on stderr, redrawn when it is a terminal.</summary>
    public static EpisodeProgress OnStderr() => new(Console.Error, !Console.IsErrorRedirected, TimeSpan.FromSeconds(5));

    public void Report((int Done, int Total) value)
    {
        var (done, total) = value;
        if (live)
        {
            var text = $"\rmetarun: scored {done}/{total} episodes";
            output.Write(done >= total ? "\r" + new string(' ', text.Length) + "\r" : text);
            return;
        }
        var reached = total == 0 ? 4 : 4 * done / total;
        if (reached <= quarter) return;
        quarter = reached;
        if (clock.Elapsed >= quietFor) output.WriteLine($"metarun: scored {done}/{total} episodes");
    }
}
