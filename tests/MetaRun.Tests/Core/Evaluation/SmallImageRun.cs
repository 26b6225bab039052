using LibTorch;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Evaluation;

/// <summary>
/// A tiny drawn image folder (train/val/test of noisy discs) and a ProtoNet run trained on it in
/// a few seconds: what the output-path and signal tests need a real checkpoint for.
/// </summary>
internal sealed class SmallImageRun : IDisposable
{
    private readonly string? oldCache = Environment.GetEnvironmentVariable("METARUN_CACHE_DIR");

    public SmallImageRun(string prefix)
    {
        Dir = TestPaths.NewTempDir(prefix);
        Environment.SetEnvironmentVariable("METARUN_CACHE_DIR", Path.Combine(Dir, "cache"));
        for (var c = 0; c < 4; c++) WriteClass(Path.Combine(Root, "train", $"c{c}"), c, 3);
        for (var c = 4; c < 7; c++) WriteClass(Path.Combine(Root, "val", $"c{c}"), c, 3);
        for (var c = 7; c < 10; c++) WriteClass(Path.Combine(Root, "test", $"c{c}"), c, 3);
    }

    public string Dir { get; }
    public string Root => Path.Combine(Dir, "images");

    public static void WriteClass(string path, int cls, int n)
    {
        Directory.CreateDirectory(path);
        for (var i = 0; i < n; i++)
        {
            var px = new byte[3 * 16 * 16];
            new Random(cls * 100 + i).NextBytes(px);
            for (var p = 0; p < px.Length; p++) px[p] = (byte)(px[p] / 4 + (cls * 23 % 180));
            using var t = Torch.From<byte>(px, 3, 16, 16);
            File.WriteAllBytes(Path.Combine(path, $"img{i}.png"), Image.EncodePng(t));
        }
    }

    public string Config(string extra = "")
    {
        var path = Path.Combine(Dir, "protonet.yaml");
        File.WriteAllText(path, $$"""
            name: small
            seed: 1
            threads: 1
            workers: 1
            data:
              dataset: folder
              root: {{Root}}
              image_size: 16
              train: {ways: 2, shots: 1, queries: 2}
              test: {ways: 2, shots: 1, queries: 2}
            model: {filters: 4}
            algorithm: {name: protonet, iterations: 2, meta_batch_size: 1}
            eval: {interval: 2, episodes: 2}
            checkpoint: {interval: 2}
            {{extra}}
            """);
        return path;
    }

    /// <summary>Trains the run into Dir/run in-process; its folder.</summary>
    public string Train()
    {
        var run = Path.Combine(Dir, "run");
        var (code, _, err) = CliRunner.Run("train", Config(), "--out", run);
        Assert.True(code == 0, err);
        return run;
    }

    /// <summary>support/&lt;class&gt;/img0 and query/&lt;class&gt;/img1.. of the test classes.</summary>
    public (string Support, string Query) SupportAndQuery()
    {
        var support = Path.Combine(Dir, "support");
        var query = Path.Combine(Dir, "query");
        foreach (var cls in Directory.GetDirectories(Path.Combine(Root, "test")).Order(StringComparer.Ordinal).Take(2))
        {
            var name = Path.GetFileName(cls);
            Directory.CreateDirectory(Path.Combine(support, name));
            Directory.CreateDirectory(Path.Combine(query, name));
            var files = Directory.GetFiles(cls).Order(StringComparer.Ordinal).ToArray();
            File.Copy(files[0], Path.Combine(support, name, Path.GetFileName(files[0])), true);
            foreach (var f in files.Skip(1)) File.Copy(f, Path.Combine(query, name, Path.GetFileName(f)), true);
        }
        return (support, query);
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("METARUN_CACHE_DIR", oldCache);
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
