using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MetaRun.Config;
using MetaRun.Tests.Training;
using YamlDotNet.RepresentationModel;
using Xunit.Abstractions;

namespace MetaRun.Tests.Cli;

/// <summary>
/// A seeded, time-bounded fuzzer over the real CLI: mutated config files, --set strings and
/// checkpoint files (bit flips, truncation, header edits, random JSON), each run as its own
/// metarun process (so a crash, a stack overflow or a hang is caught, not fatal to the test host).
/// Every case must end with a documented exit code (0–5), one "metarun: …" line and no stack
/// trace on failure, no raw exception name, and no file touched outside its run folder.
/// METARUN_FUZZ_SECONDS (default 45) bounds it; METARUN_FUZZ_SEED (default 16) picks the cases.
/// </summary>
public partial class FuzzTests(ITestOutputHelper output)
{
    private static readonly string[] Tokens =
    [
        "-1", "0", "1", "2", "3", "-0", "0.5", "1e309", "-1e309", "NaN", ".nan", ".inf", "-.inf", "99999999999999999999",
        "2147483648", "9223372036854775807", "", "~", "null", "true", "yes", "\"\"", "''", "[]", "[1, 2]", "[[[1]]]", "{}",
        "{a: 1}", "{iterations: 3}", "&a 1", "*a", "!!binary AAAA", "!!str 5", "\"../../x\"", "\"a/b\"", "\"\\0\"", "é", "\t",
        "\"" + new string('x', 3000) + "\"", "0x10", "1_000", "+5", "[40, 0]", "[100000]", "[300, 300, 300]", "[-3]", "maml",
        "protonet", "baseline", "baseline++", "reptile", "metasgd", "anil", "omniglot", "miniimagenet", "conv4", "mlp", "cosine",
        "linear", "cuda", "cpu", "lake", "sgd", "maxpool", "---", "- a", "? x", "|", ">", "%YAML 1.2", "[", "{", "'", "\"",
    ];

    private static readonly string[] DTypes = ["BOOL", "U8", "I32", "I64", "F32", "F64", "F16", "BF16", "X", ""];

    private static readonly string[] Keys = LeafKeys();

    private static string[] LeafKeys()
    {
        var s = new YamlStream();
        s.Load(new StringReader(ConfigLoader.ToYaml(new RunConfig())));
        var keys = new List<string>();
        void Walk(YamlMappingNode m, string prefix)
        {
            foreach (var (k, v) in m.Children)
            {
                var path = prefix + ((YamlScalarNode)k).Value;
                keys.Add(path);
                if (v is YamlMappingNode child) Walk(child, path + ".");
            }
        }
        Walk((YamlMappingNode)s.Documents[0].RootNode, "");
        return [.. keys];
    }

    private static readonly Regex RawException = new(@"^metarun: [A-Z]\w*(Exception|Error)\b", RegexOptions.Compiled);

    private sealed record Case(string Kind, string Description, string[] Args);

    [Fact]
    public void MutatedConfigsSetStringsAndCheckpointsEndInADocumentedExitCodeAndOneLine()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("METARUN_FUZZ_SECONDS"), out var s) ? s : 45;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("METARUN_FUZZ_SEED"), out var sd) ? sd : 16;
        var rng = new Random(seed);
        var sandbox = TestPaths.NewTempDir("fuzz");
        var baseConfig = File.ReadAllText(Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"));
        var omniglotConfig = File.ReadAllText(Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s-cpu.yaml"));

        // One real short run whose checkpoint the checkpoint cases mutate.
        var trained = Path.Combine(sandbox, "trained");
        var runConfig = Path.Combine(sandbox, "run.yaml");
        File.WriteAllText(runConfig, CheckpointTests.Sinusoid);
        var first = ChildProcess.Run(["train", runConfig, "--out", trained]);
        Assert.True(first.Code == 0, first.Err);
        var lastBytes = File.ReadAllBytes(Path.Combine(trained, "checkpoints", "last.safetensors"));

        var clock = Stopwatch.StartNew();
        var finds = new List<string>();
        var counts = new Dictionary<string, int>();
        var codes = new SortedDictionary<int, int>();
        var n = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            var dir = Directory.CreateDirectory(Path.Combine(sandbox, $"case-{n:00000}")).FullName;
            var cwd = Directory.CreateDirectory(Path.Combine(dir, "cwd")).FullName;
            var run = Path.Combine(dir, "run");
            var c = (n % 6) switch
            {
                0 => ConfigCase(rng, dir, run, rng.Next(5) == 0 ? omniglotConfig : baseConfig),
                1 => SetCase(rng, dir, run, baseConfig),
                2 => CheckpointCase(rng, dir, run, trained, runConfig, lastBytes),
                3 => SweepCase(rng, dir, run),
                4 => OptionCase(rng, dir, run, trained),
                _ => FolderCase(rng, dir, run),
            };
            var before = Snapshot(sandbox, run);
            var problem = Check(c, cwd, out var code, out var message);
            if (code == 1) output.WriteLine($"case {n} ({c.Kind}: {c.Description}) exit 1, allowed but worth a look: {message}");
            var after = Snapshot(sandbox, run);
            var touched = after.Except(before).Concat(before.Except(after)).Select(e => e.Split('|')[0]).Distinct().ToArray();
            if (touched.Length > 0) problem ??= $"touched outside its run folder: {string.Join(", ", touched.Take(5))}";
            counts[c.Kind] = counts.GetValueOrDefault(c.Kind) + 1;
            codes[code] = codes.GetValueOrDefault(code) + 1;
            if (problem != null) finds.Add($"case {n} ({c.Kind}: {c.Description}): {problem}\n    metarun {string.Join(' ', c.Args.Select(a => a.Length > 200 ? a[..200] + "…" : a))}");
            else Directory.Delete(dir, recursive: true);
            n++;
        }
        var summary = $"fuzz seed {seed}: {n} cases in {clock.Elapsed.TotalSeconds:F0} s ({string.Join(", ", counts.Select(kv => $"{kv.Value} {kv.Key}"))}); exit codes {string.Join(", ", codes.Select(kv => $"{kv.Key}×{kv.Value}"))}; {finds.Count} finds";
        output.WriteLine(summary);
        foreach (var f in finds) output.WriteLine(f);
        Console.WriteLine(summary);
        if (finds.Count == 0) Directory.Delete(sandbox, recursive: true);
        Assert.True(finds.Count == 0, summary + " (inputs kept under " + sandbox + ")\n" + string.Join("\n", finds.Take(10)));
    }

    /// <summary>Runs one case; null when it behaved, else what was wrong.</summary>
    private static string? Check(Case c, string cwd, out int code, out string message)
    {
        int exit;
        string err;
        message = "";
        try
        {
            (exit, _, err) = ChildProcess.Run(c.Args, workDir: cwd, timeout: TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            code = -1;
            return "hangs (no exit within 60 s)";
        }
        code = exit;
        message = Head(err.Trim());
        if (exit is < 0 or > 5) return $"exit {exit}: {Head(err)}";
        if (exit == 0) return null;
        // Informational lines (a folder being decoded, what a resume changed, said before training
        // starts) and the usage hint after a parse error are not the message.
        var lines = err.Trim().Split('\n').Where(l => !l.StartsWith("metarun: folder: decoding", StringComparison.Ordinal) && !l.StartsWith("metarun: resuming with ", StringComparison.Ordinal)
            && l != "Run 'metarun --help' for usage.").ToArray();
        if (err.Contains("   at ", StringComparison.Ordinal)) return $"stack trace: {Head(err)}";
        if (lines.Length != 1) return $"{lines.Length} lines: {Head(err)}";
        if (!lines[0].StartsWith("metarun: ", StringComparison.Ordinal)) return $"not a metarun message: {Head(err)}";
        if (RawException.IsMatch(lines[0])) return $"raw exception: {Head(err)}";
        return null;
    }

    private static string Head(string s) => s.Length > 300 ? s[..300] + "…" : s;

    /// <summary>Every file and folder under root except the run folder, with length and write time.</summary>
    private static HashSet<string> Snapshot(string root, string exclude)
    {
        var set = new HashSet<string>();
        foreach (var e in new DirectoryInfo(root).EnumerateFileSystemInfos("*", SearchOption.AllDirectories))
        {
            if (e.FullName == exclude || e.FullName.StartsWith(exclude + Path.DirectorySeparatorChar, StringComparison.Ordinal)) continue;
            // A folder's write time changes when the run folder is made in it: folders count by name only.
            set.Add(e is FileInfo f ? $"{e.FullName}|{f.Length}|{e.LastWriteTimeUtc.Ticks}" : e.FullName);
        }
        return set;
    }

    // Caps that keep a case that happens to be valid short (a mutation may set any value).
    private static string[] Caps(string run) =>
        ["--out", run, "--set", "algorithm.iterations=2", "--set", "eval.episodes=2", "--set", "algorithm.meta_batch_size=2"];

    private static string[] Common(string dir) => ["--data-root", Path.Combine(dir, "no-data")];

    private static Case ConfigCase(Random rng, string dir, string run, string yaml)
    {
        var mutations = new List<string>();
        var text = yaml;
        for (var i = rng.Next(1, 4); i > 0; i--)
        {
            (text, var what) = MutateYaml(rng, text);
            mutations.Add(what);
        }
        var path = Path.Combine(dir, "c.yaml");
        File.WriteAllBytes(path, Encoding.UTF8.GetBytes(text));
        return new Case("config", string.Join("; ", mutations), [.. Common(dir), "train", path, .. Caps(run)]);
    }

    private static (string, string) MutateYaml(Random rng, string text)
    {
        var lines = text.Split('\n').ToList();
        var i = rng.Next(lines.Count);
        switch (rng.Next(9))
        {
            case 0 or 1 or 2:
            {
                var colon = lines[i].IndexOf(':');
                var token = Tokens[rng.Next(Tokens.Length)];
                if (colon < 0) lines[i] += ": " + token;
                else lines[i] = lines[i][..(colon + 1)] + " " + token;
                return (string.Join('\n', lines), $"line {i + 1} value {token}");
            }
            case 3:
                lines.RemoveAt(i);
                return (string.Join('\n', lines), $"delete line {i + 1}");
            case 4:
                lines.Insert(i, lines[i]);
                return (string.Join('\n', lines), $"duplicate line {i + 1}");
            case 5:
            {
                var key = Keys[rng.Next(Keys.Length)].Split('.')[^1];
                var line = new string(' ', 2 * rng.Next(4)) + key + ": " + Tokens[rng.Next(Tokens.Length)];
                lines.Insert(i, line);
                return (string.Join('\n', lines), $"insert '{line}' at {i + 1}");
            }
            case 6:
            {
                var cut = rng.Next(text.Length + 1);
                return (text[..cut], $"truncate at {cut}");
            }
            case 7:
            {
                var bytes = Encoding.UTF8.GetBytes(text);
                var at = rng.Next(bytes.Length);
                bytes[at] ^= (byte)(1 << rng.Next(8));
                return (Encoding.UTF8.GetString(bytes), $"flip a bit of byte {at}");
            }
            default:
            {
                const string odd = "\t :-[]{}#&*!|>'\"%@`,?\0x";
                var junk = new string(Enumerable.Range(0, rng.Next(1, 12)).Select(_ => odd[rng.Next(odd.Length)]).ToArray());
                var at = rng.Next(text.Length + 1);
                return (text[..at] + junk + text[at..], $"insert {junk.Length} odd characters at {at}");
            }
        }
    }

    private static Case SetCase(Random rng, string dir, string run, string yaml)
    {
        var path = Path.Combine(dir, "c.yaml");
        File.WriteAllText(path, yaml);
        var sets = new List<string>();
        for (var i = rng.Next(1, 4); i > 0; i--)
        {
            var key = Keys[rng.Next(Keys.Length)];
            key = rng.Next(8) switch
            {
                0 => key + ".x",
                1 => key.Replace('.', rng.Next(2) == 0 ? '/' : '_'),
                2 => "." + key,
                3 => key.Split('.')[0],
                _ => key,
            };
            var value = Tokens[rng.Next(Tokens.Length)];
            sets.Add(rng.Next(12) == 0 ? key + value : $"{key}={value}");
        }
        // Caps last: a fuzzed iteration count would only make a long run, not a finding.
        string[] args = [.. Common(dir), "train", path, .. sets.SelectMany(x => new[] { "--set", x }), .. Caps(run)];
        return new Case("--set", string.Join(" ", sets.Select(x => x.Length > 60 ? x[..60] + "…" : x)), args);
    }

    private static Case CheckpointCase(Random rng, string dir, string run, string trained, string runConfig, byte[] last)
    {
        var bytes = (byte[])last.Clone();
        string what;
        switch (rng.Next(6))
        {
            case 0:
            {
                var flips = rng.Next(1, 17);
                for (var i = 0; i < flips; i++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                what = $"{flips} bit flips";
                break;
            }
            case 1:
            {
                var cut = rng.Next(bytes.Length);
                bytes = bytes[..cut];
                what = $"truncated to {cut} bytes";
                break;
            }
            case 2:
            {
                var length = rng.Next(3) switch { 0 => (ulong)rng.NextInt64(), 1 => (ulong)rng.Next(bytes.Length), _ => ulong.MaxValue };
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
                what = $"header length {length}";
                break;
            }
            case 3:
            {
                var json = RandomJson(rng, 3).ToJsonString();
                bytes = [.. new byte[8], .. Encoding.UTF8.GetBytes(json)];
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(bytes.Length - 8));
                what = "random JSON header";
                break;
            }
            default:
                (bytes, what) = EditHeader(rng, bytes);
                break;
        }
        // The run folder is a copy of the trained run whose last checkpoint is the mutated one.
        CopyDir(trained, run);
        var file = Path.Combine(run, "checkpoints", "last.safetensors");
        File.WriteAllBytes(file, bytes);
        if (rng.Next(3) == 0)
            return new Case("checkpoint (resume)", what, ["train", runConfig, "--resume", run, "--set", "algorithm.iterations=6"]);
        return new Case("checkpoint (eval)", what, ["eval", "--checkpoint", file, "--episodes", "2", "--out", Path.Combine(run, "eval.json")]);
    }

    private static (byte[], string) EditHeader(Random rng, byte[] bytes)
    {
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, n))!.AsObject();
        var meta = header["__metadata__"]!.AsObject();
        var tensors = header.Select(kv => kv.Key).Where(k => k != "__metadata__").ToArray();
        var t = tensors[rng.Next(tensors.Length)];
        string what;
        switch (rng.Next(8))
        {
            case 0:
                header[t]!["dtype"] = DTypes[rng.Next(DTypes.Length)];
                what = $"{t} dtype {header[t]!["dtype"]}";
                break;
            case 1:
                header[t]!["shape"] = new JsonArray(Enumerable.Range(0, rng.Next(4)).Select(_ => (JsonNode)JsonValue.Create(rng.Next(3) switch { 0 => -1L, 1 => rng.NextInt64(), _ => rng.Next(64) })).ToArray());
                what = $"{t} shape {header[t]!["shape"]!.ToJsonString()}";
                break;
            case 2:
                header[t]!["data_offsets"] = new JsonArray(rng.NextInt64(-5, 5000), rng.NextInt64(-5, 5000));
                what = $"{t} offsets {header[t]!["data_offsets"]!.ToJsonString()}";
                break;
            case 3:
                header.Remove(t);
                what = $"{t} removed";
                break;
            case 4:
            {
                var key = meta.Select(kv => kv.Key).ElementAt(rng.Next(meta.Count));
                meta[key] = Tokens[rng.Next(Tokens.Length)];
                what = $"metadata {key} = {meta[key]}";
                break;
            }
            case 5:
            {
                var key = meta.Select(kv => kv.Key).ElementAt(rng.Next(meta.Count));
                meta.Remove(key);
                what = $"metadata {key} removed";
                break;
            }
            case 6:
            {
                var (yaml, m) = MutateYaml(rng, meta["config"]!.GetValue<string>());
                meta["config"] = yaml;
                what = $"embedded config: {m}";
                break;
            }
            default:
                header[t]![rng.Next(2) == 0 ? "dtype" : "shape"] = RandomJson(rng, 2);
                what = $"{t} random field";
                break;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var result = new byte[8 + json.Length + bytes.Length - 8 - n];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)json.Length);
        json.CopyTo(result, 8);
        bytes.AsSpan(8 + n).CopyTo(result.AsSpan(8 + json.Length));
        return (result, what);
    }

    private static JsonNode RandomJson(Random rng, int depth) => (depth <= 0 ? rng.Next(4) : rng.Next(6)) switch
    {
        0 => JsonValue.Create(rng.NextInt64(-1000, 1000)),
        1 => JsonValue.Create(Tokens[rng.Next(Tokens.Length)]),
        2 => JsonValue.Create(rng.NextDouble() * 1e10),
        3 => JsonValue.Create(rng.Next(2) == 0),
        4 => new JsonArray(Enumerable.Range(0, rng.Next(4)).Select(_ => RandomJson(rng, depth - 1)).ToArray()),
        _ => new JsonObject(Enumerable.Range(0, rng.Next(4)).Select(i => KeyValuePair.Create(
            rng.Next(3) == 0 ? "__metadata__" : $"k{i}", (JsonNode?)RandomJson(rng, depth - 1))).DistinctBy(kv => kv.Key)),
    };

    private static void CopyDir(string from, string to)
    {
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, d)));
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(f, Path.Combine(to, Path.GetRelativePath(from, f)));
    }
}
