using System.CommandLine;
using System.CommandLine.Parsing;
using MetaRun.Config;
using MetaRun.Distributed;

namespace MetaRun.Cli.Commands;

/// <summary>`--nproc N` on train and bench: run the same command as N local ranks under a supervisor.</summary>
public static class Nproc
{
    public static readonly Option<int> Option = NumberOptions.Int("--nproc", "Run as N data-parallel processes on this machine (each gets cores ÷ N; see docs/distributed.md)", 1, 1_000_000, 1);

    public static readonly Option<bool> Oversubscribe = new("--oversubscribe")
    {
        Description = "Allow --nproc above this machine's core count",
    };

    /// <summary>N when more than one process was asked for; refused inside a launch that already set ranks.</summary>
    public static int? Requested(ParseResult r)
    {
        var n = r.GetValue(Option);
        if (n < 1) throw new ConfigException("--nproc must be at least 1");
        if (n == 1) return null;
        ProcessCap.Check(n, r.GetValue(Oversubscribe));
        if (MetaRun.Distributed.Launch.FromEnvironment() != null)
            throw new ConfigException("--nproc starts its own ranks, but this process was already given one (RANK/WORLD_SIZE or SLURM_PROCID/SLURM_STEP_NUM_TASKS); drop one of the two");
        return n;
    }

    /// <summary>Starts the ranks with this command line minus --nproc, and waits for them.</summary>
    public static int Launch(ParseResult r, int n, RunConfig config)
    {
        var tokens = r.Tokens.Select(t => t.Value).ToList();
        var args = new List<string>();
        for (var i = 0; i < tokens.Count; i++)
        {
            if (tokens[i] == "--nproc") { i++; continue; }
            if (tokens[i].StartsWith("--nproc=", StringComparison.Ordinal)) continue;
            args.Add(tokens[i]);
        }
        return LocalLauncher.Run(n, args, TimeSpan.FromSeconds(config.Distributed.Timeout), Console.Out, Console.Error);
    }
}
