using System.Globalization;

namespace MetaRun.Distributed;

/// <summary>
/// Where this process sits in a distributed run: its rank among all processes, its rank on its
/// own machine (which picks its GPU and its share of the cores) and where the rendezvous store is.
/// </summary>
public sealed record Launch(int Rank, int WorldSize, int LocalRank, int LocalWorldSize, string MasterAddr, int MasterPort)
{
    /// <summary>torchrun's default rendezvous port, used when the launcher names none.</summary>
    public const int DefaultPort = 29500;

    /// <summary>
    /// torchrun's agent already serves a store at MASTER_ADDR:MASTER_PORT (it says so with
    /// TORCHELASTIC_USE_AGENT_STORE=True): every rank is then its client, rank 0 included.
    /// </summary>
    public bool LauncherHostsStore { get; init; }

    /// <summary>torchrun's restart count: each attempt keeps its keys apart in the launcher's store.</summary>
    public int Attempt { get; init; }

    /// <summary>Whether this process serves the rendezvous store.</summary>
    public bool ServesStore => Rank == 0 && !LauncherHostsStore;

    public string StorePrefix => $"metarun/{Attempt}/";

    /// <summary>
    /// The launch a parent process or a cluster described in the environment: torchrun's
    /// variables first (our own --nproc supervisor sets them too), else Slurm's; null when neither
    /// describes more than one process.
    /// </summary>
    public static Launch? FromEnvironment(Func<string, string?>? getenv = null)
    {
        getenv ??= Environment.GetEnvironmentVariable;
        if (getenv("RANK") != null || getenv("WORLD_SIZE") != null)
        {
            var world = Int(getenv, "WORLD_SIZE", min: 1);
            var rank = Int(getenv, "RANK", min: 0);
            if (rank >= world) throw Bad($"RANK={rank} is not below WORLD_SIZE={world}");
            var local = Int(getenv, "LOCAL_RANK", min: 0, fallback: rank);
            var localWorld = Int(getenv, "LOCAL_WORLD_SIZE", min: 1, fallback: world);
            if (world == 1) return null;
            var addr = getenv("MASTER_ADDR") ?? throw Bad("MASTER_ADDR is not set (RANK and WORLD_SIZE are)");
            return new Launch(rank, world, local, localWorld, addr, Int(getenv, "MASTER_PORT", min: 1, fallback: DefaultPort))
            {
                LauncherHostsStore = string.Equals(getenv("TORCHELASTIC_USE_AGENT_STORE"), "true", StringComparison.OrdinalIgnoreCase),
                Attempt = Int(getenv, "TORCHELASTIC_RESTART_COUNT", min: 0, fallback: 0),
            };
        }
        // Only a step started by srun is a set of ranks: a batch script itself (an sbatch job,
        // an array task) also has SLURM_PROCID, and SLURM_NTASKS when --ntasks was asked for, but
        // runs one process; SLURM_STEP_NUM_TASKS is set by srun alone.
        if (getenv("SLURM_PROCID") != null && getenv("SLURM_STEP_NUM_TASKS") != null)
        {
            var world = Int(getenv, "SLURM_STEP_NUM_TASKS", min: 1);
            if (world == 1) return null;
            var rank = Int(getenv, "SLURM_PROCID", min: 0);
            var local = Int(getenv, "SLURM_LOCALID", min: 0);
            var nodelist = getenv("SLURM_JOB_NODELIST") ?? getenv("SLURM_NODELIST") ?? throw Bad("SLURM_JOB_NODELIST is not set (SLURM_PROCID is)");
            var localWorld = LocalTasks(getenv("SLURM_STEP_TASKS_PER_NODE") ?? getenv("SLURM_TASKS_PER_NODE"), world);
            return new Launch(rank, world, local, localWorld, getenv("MASTER_ADDR") ?? FirstHost(nodelist),
                Int(getenv, "MASTER_PORT", min: 1, fallback: DefaultPort));
        }
        return null;
    }

    /// <summary>
    /// The first host of a Slurm hostlist ("gpu[07-09,12],cpu3" → "gpu07"). Written out here because
    /// only the first name is needed, and asking `scontrol show hostnames` would need Slurm's tools
    /// on every compute node.
    /// </summary>
    public static string FirstHost(string nodelist)
    {
        var s = nodelist.Trim();
        var open = s.IndexOf('[');
        var comma = s.IndexOf(',');
        if (open < 0 || (comma >= 0 && comma < open)) return comma < 0 ? s : s[..comma];
        var close = s.IndexOf(']', open);
        if (close < 0) throw Bad($"SLURM_JOB_NODELIST '{nodelist}' has an unclosed '['");
        var first = s[(open + 1)..close].Split(',')[0].Split('-')[0];
        // What follows the brackets up to the next name may hold another bracket ("r[1-2]n[01-04]").
        var rest = s[(close + 1)..];
        return s[..open] + first + (rest.Length == 0 || rest[0] == ',' ? "" : FirstHost(rest));
    }

    /// <summary>Tasks on the first node from Slurm's "2(x3),1" form (the supervisor-free case assumes even nodes).</summary>
    private static int LocalTasks(string? perNode, int world)
    {
        if (string.IsNullOrEmpty(perNode)) return world;
        var head = perNode.Split(',')[0];
        var paren = head.IndexOf('(');
        return int.TryParse(paren < 0 ? head : head[..paren], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : world;
    }

    private static int Int(Func<string, string?> getenv, string name, int min, int? fallback = null)
    {
        var text = getenv(name);
        if (text == null) return fallback ?? throw Bad($"{name} is not set");
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v < min)
            throw Bad($"{name}='{text}' is not an integer ≥ {min}");
        return v;
    }

    private static ConfigException Bad(string message) => new($"distributed launch environment: {message}");
}
