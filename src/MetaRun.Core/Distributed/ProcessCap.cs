using System.Globalization;

namespace MetaRun.Distributed;

/// <summary>
/// How many local ranks `--nproc` may start: no more than the machine's cores (each rank is a
/// whole libtorch process; hundreds on a few cores only thrash, silently, for minutes).
/// </summary>
public static class ProcessCap
{
    public static void Check(int nproc, bool oversubscribe)
    {
        var cores = Environment.ProcessorCount;
        if (nproc <= cores || oversubscribe) return;
        throw new ConfigException(
            $"--nproc {nproc.ToString(CultureInfo.InvariantCulture)}: this machine has {cores.ToString(CultureInfo.InvariantCulture)} CPU core(s), so at most --nproc {cores.ToString(CultureInfo.InvariantCulture)}; " +
            "add --oversubscribe to start more ranks than cores anyway");
    }
}
