using System.Globalization;
using LibTorch;

// One rank of a distributed binding test: MODE HOST PORT RANK WORLD TIMEOUT_MS [HASH].
// Prints "joined" once the group exists and "RESULT name=values" lines; a failure prints
// "ERROR message" and exits 1, so the test reads exactly what the rank saw.
var (mode, host, port, rank, world, timeout) =
    (args[0], args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture),
     int.Parse(args[4], CultureInfo.InvariantCulture), TimeSpan.FromMilliseconds(double.Parse(args[5], CultureInfo.InvariantCulture)));
try
{
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

static void Print(string name, IEnumerable<double> values) =>
    Console.WriteLine($"RESULT {name}=" + string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
