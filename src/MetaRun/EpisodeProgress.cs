namespace MetaRun.Cli;

/// <summary>
/// How far an evaluation is (seconds for 600 MAML episodes, minutes under PGD): a line redrawn in
/// place on a terminal, and a line at each quarter when stderr is a log.
/// </summary>
public sealed class EpisodeProgress : IProgress<(int Done, int Total)>
{
    private readonly bool live = !Console.IsErrorRedirected;
    private int quarter;

    public void Report((int Done, int Total) value)
    {
        var (done, total) = value;
        if (live)
        {
            Console.Error.Write($"\rmetarun: scored {done}/{total} episodes");
            if (done >= total) Console.Error.WriteLine();
            return;
        }
        var reached = total == 0 ? 4 : 4 * done / total;
        if (reached <= quarter) return;
        quarter = reached;
        Console.Error.WriteLine($"metarun: scored {done}/{total} episodes");
    }
}
