using System.Globalization;
using LibTorch;

// One rank of a distributed binding test: MODE HOST PORT RANK WORLD TIMEOUT_MS [HASH].
// Prints "joined" once the group exists and "RESULT name=values" lines; a failure prints
// "ERROR message" and exits 1, so the test reads exactly what the rank saw.
var (mode, host, port, rank, world, timeout) =
    (args[0], args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture),
     int.Parse(args[4], CultureInfo.InvariantCulture), TimeSpan.FromMilliseconds(double.Parse(args[5], CultureInfo.InvariantCulture)));
// Gated (METARUN_PROBE_GATE=1): the test starts every rank, waits for each "ready", then lets them go
// together, so a short timeout measures the collective, not a slow process start.
if (Environment.GetEnvironmentVariable("METARUN_PROBE_GATE") == "1")
{
    Console.WriteLine("ready");
    Console.ReadLine();
}
try
{
    if (mode.StartsWith("dp-", StringComparison.Ordinal)) return DataParallelMode(mode, host, port, rank, world, timeout);
    using var store = TcpStore.Create(host, port, rank == 0, world, timeout);
    if (args.Length > 6) store.AgreeOn("config hash", args[6], rank, world);
    using var group = ProcessGroup.Create(CollectiveBackend.Gloo, store, rank, world, timeout);
    Console.WriteLine("joined");
    switch (mode)
    {
        case "collectives":
            using (var scope = Torch.NewScope())
            {
                // Tensors of different shapes and values that depend on the rank: their sums are
                // known in closed form to the test.
                var a = Torch.Arange(0, 5, 1, ScalarType.Float32) * (rank + 1);
                var b = Torch.Full([2, 3], 10.0 * (rank + 1), ScalarType.Float64);
                group.AllReduceSum([a, b]);
                Print("a", a.ToArray<float>().Select(v => (double)v));
                Print("b", b.ToArray<double>());
                var c = Torch.Full([3], rank == 1 ? 7.0 : -1.0, ScalarType.Float32);
                group.Broadcast([c], root: 1);
                Print("c", c.ToArray<float>().Select(v => (double)v));
                var gathered = group.AllGather([rank, rank * 0.5]);
                Print("g", gathered.SelectMany(x => x));
                group.Barrier();
            }
            break;
        case "idle":
            // Alive and joined but never entering a collective: a hung peer.
            Thread.Sleep(TimeSpan.FromMinutes(2));
            break;
        case "allreduce":
            using (var scope = Torch.NewScope())
            {
                var x = Torch.Ones([4]);
                group.AllReduceSum([x]);
                Print("x", x.ToArray<float>().Select(v => (double)v));
            }
            break;
        default:
            throw new ArgumentException("unknown mode " + mode);
    }
    Console.Out.Flush();
    return 0;
}
catch (TorchException e)
{
    Console.WriteLine("ERROR " + e.Message.ReplaceLineEndings(" "));
    return 1;
}

// DataParallel, the trainer's layer over the binding: repeated all-reduces until a peer fails,
// then the error naming the failed rank (dp-loop), or a rank stopping on its own error (dp-error).
static int DataParallelMode(string mode, string host, int port, int rank, int world, TimeSpan timeout)
{
    try
    {
        using var dp = MetaRun.Distributed.DataParallel.Join(new MetaRun.Distributed.Launch(rank, world, rank, world, host, port), "digest", Device.Cpu, timeout);
        Console.WriteLine("joined");
        for (var step = 0; step < 100000; step++)
        {
            if (mode == "dp-error" && rank == 1 && step == 3)
            {
                var e = new InvalidOperationException("data file broken at episode 7");
                dp.ReportFailure(e);
                Console.WriteLine("ERROR " + e.Message);
                return 1;
            }
            using var scope = Torch.NewScope();
            var sums = dp.AllReduce([Torch.Ones([3])], [1.0], $"the all-reduce of iteration {step}");
            if (sums[0] != world) throw new InvalidOperationException("wrong sum " + sums[0]);
            Thread.Sleep(50);
        }
        return 0;
    }
    catch (MetaRun.MetaRunException e)
    {
        Console.WriteLine($"ERROR({e.ExitCode}) " + e.Message);
        return e.ExitCode;
    }
}

static void Print(string name, IEnumerable<double> values) =>
    Console.WriteLine($"RESULT {name}=" + string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
