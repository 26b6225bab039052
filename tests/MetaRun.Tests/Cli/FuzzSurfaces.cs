using LibTorch;

namespace MetaRun.Tests.Cli;

/// <summary>
/// The fuzzer's newer surfaces: sweep files (validated and printed as a Slurm script, nothing
/// run), numeric option strings on eval, adapt, sweep and --nproc, and folder data sets with
/// hostile files (cut, empty or mislabelled images, dangling symlinks, odd names).
/// </summary>
public partial class FuzzTests
{
    private static readonly string[] SweepLines =
    [
        "grid: {algorithm.inner_lr: [0.01, 0.02]}", "grid: {algorithm.inner_lr: []}", "grid: [1, 2]", "grid: {x.y: [1]}",
        "list: [{algorithm.inner_steps: 1}, {algorithm.inner_steps: 5}]", "list: 3", "seeds: [1, 2]", "seeds: [1, 1]", "seeds: [a]",
        "seeds: []", "eval: {episodes: -1}", "eval: {episodes: 2147483648}", "eval: {split: train}", "eval: 5",
        "slurm: {throttle: 0}", "slurm: {extra: [\"--qos=x\"]}", "slurm: {cpus_per_task: x}", "set: [algorithm.iterations=0]",
        "set: 5", "set: [\"no equals\"]", "name: a/b", "name: ''", "out: /dev/null/x", "bogus: 1",
        "grid: {algorithm.inner_lr: [" + string.Join(", ", Enumerable.Range(1, 200).Select(i => i / 1e5)) + "], algorithm.outer_lr: [" + string.Join(", ", Enumerable.Range(1, 200).Select(i => i / 1e6)) + "]}",
    ];

    private static readonly string[] NumberTokens =
        ["0", "1", "2", "-1", "1,000", "0,1", "1.5", "1e3", "NaN", "Infinity", "-0", "99999999999", "2147483647", " 3", "abc", "", "0x10", "1_000", "١٢"];

    private static Case SweepCase(Random rng, string dir, string run)
    {
        var path = Path.Combine(dir, "s.yaml");
        var lines = new List<string> { $"config: {Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml")}", $"out: {run}" };
        for (var i = rng.Next(1, 4); i > 0; i--)
        {
            var line = SweepLines[rng.Next(SweepLines.Length)];
            if (!lines.Any(l => l.Split(':')[0] == line.Split(':')[0])) lines.Add(line);
        }
        if (rng.Next(6) == 0) lines.Insert(rng.Next(lines.Count), Tokens[rng.Next(Tokens.Length)]);
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return new Case("sweep", string.Join(" | ", lines.Skip(2)), [.. Common(dir), "sweep", path, "--launcher", "slurm", "--dry-run"]);
    }

    private static Case OptionCase(Random rng, string dir, string run, string trained)
    {
        var t = NumberTokens[rng.Next(NumberTokens.Length)];
        // Valid values stay small: a finding is a bad message, not a long evaluation.
        string[] args = rng.Next(6) switch
        {
            0 => ["eval", "--checkpoint", trained, "--out", Path.Combine(run, "e.json"), "--episodes", t == "2147483647" || t == "99999999999" ? t : "2", "--attack", "fgsm", "--epsilon", t],
            1 => ["eval", "--checkpoint", trained, "--out", Path.Combine(run, "e.json"), "--episodes", int.TryParse(t, out var e) && e > 50 ? t : "x" + t],
            2 => ["eval", "--checkpoint", trained, "--out", Path.Combine(run, "e.json"), "--episodes", "2", "--attack", "pgd", "--epsilon", "0.1", "--steps", t == "1" || t == "2" ? "x" : t],
            3 => ["adapt", "--checkpoint", trained, "--support", Path.Combine(dir, "none"), "--steps", t],
            4 => ["sweep", Path.Combine(dir, "none.yaml"), "--parallel", t, "--max-runs", NumberTokens[rng.Next(NumberTokens.Length)]],
            _ => ["eval", "--checkpoint", Path.Combine(dir, "none"), "--nproc", t],
        };
        Directory.CreateDirectory(run);
        return new Case("option", string.Join(" ", args.Skip(1)), [.. Common(dir), .. args]);
    }

    private static Case FolderCase(Random rng, string dir, string run)
    {
        var root = Path.Combine(dir, "images");
        var rngPixels = new Random(rng.Next());
        for (var c = 0; c < 7; c++)
        {
            var split = c < 3 ? "train" : c < 5 ? "val" : "test";
            var cls = Directory.CreateDirectory(Path.Combine(root, split, $"k{c}")).FullName;
            for (var i = 0; i < 3; i++)
            {
                var px = new byte[3 * 12 * 12];
                rngPixels.NextBytes(px);
                using var img = Torch.From<byte>(px, 3, 12, 12);
                File.WriteAllBytes(Path.Combine(cls, $"i{i}.{(i == 1 ? "jpg" : "png")}"), i == 1 ? Image.EncodeJpeg(img) : Image.EncodePng(img));
            }
        }
        var victims = Directory.GetFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
        var victim = victims[rng.Next(victims.Length)];
        var bytes = File.ReadAllBytes(victim);
        var what = rng.Next(9) switch
        {
            0 => Do("cut", () => File.WriteAllBytes(victim, bytes[..rng.Next(bytes.Length)])),
            1 => Do("empty", () => File.WriteAllBytes(victim, [])),
            2 => Do("garbage", () => File.WriteAllBytes(victim, [.. Enumerable.Range(0, 64).Select(_ => (byte)rng.Next(256))])),
            3 => Do("renamed", () => File.Move(victim, Path.ChangeExtension(victim, Path.GetExtension(victim) == ".png" ? ".jpg" : ".png"))),
            4 => Do("bit flip", () => { bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8)); File.WriteAllBytes(victim, bytes); }),
            5 => Do("dangling class link", () => File.CreateSymbolicLink(Path.Combine(root, "train", "gone"), Path.Combine(dir, "nowhere"))),
            6 => Do("looping class link", () => File.CreateSymbolicLink(Path.Combine(root, "train", "loop"), Path.Combine(root, "train", "loop"))),
            7 => Do("unsupported", () => File.WriteAllBytes(Path.ChangeExtension(victim, ".webp"), bytes)),
            _ => Do("no test split", () => Directory.Delete(Path.Combine(root, "test"), recursive: true)),
        };
        var config = Path.Combine(dir, "f.yaml");
        File.WriteAllText(config, $$"""
            name: fuzz-folder
            threads: 1
            workers: 1
            data:
              dataset: folder
              root: {{root}}
              image_size: 12
              train: {ways: 2, shots: 1, queries: 1}
              test: {ways: 2, shots: 1, queries: 1}
            model: {filters: 4}
            algorithm: {name: protonet, iterations: 1, meta_batch_size: 1}
            eval: {interval: 1, episodes: 1}
            checkpoint: {interval: 1}
            """);
        return new Case("folder", $"{what} {Path.GetRelativePath(root, victim)}", ["train", config, "--out", run]);
    }

    private static string Do(string what, Action action)
    {
        action();
        return what;
    }
}
