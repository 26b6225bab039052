using System.Text.Json;
using LibTorch;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Data;

/// <summary>
/// The folder data set and `metarun adapt` end to end on a small drawn image folder: several
/// sizes, gray and RGB PNG, RGB and CMYK JPEG; training, evaluation and adaptation through the
/// CLI; a corrupt image, too-small classes and bad support sets as the errors the docs promise.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class FolderDatasetTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("folder");
    private readonly string? oldCache = Environment.GetEnvironmentVariable("METARUN_CACHE_DIR");
    private string Root => Path.Combine(dir, "images");
    private string Cache => Path.Combine(dir, "cache");

    public FolderDatasetTests()
    {
        Environment.SetEnvironmentVariable("METARUN_CACHE_DIR", Cache);
        for (var c = 0; c < 6; c++) WriteClass(Path.Combine(Root, "train", $"shape{c}"), c, 4);
        for (var c = 6; c < 9; c++) WriteClass(Path.Combine(Root, "val", $"shape{c}"), c, 4);
        for (var c = 9; c < 14; c++) WriteClass(Path.Combine(Root, "test", $"shape{c}"), c, 4);
        // One CMYK JPEG, as print workflows write them.
        using var cmyk = Drawn(0, 9, 30, 30, 3);
        File.WriteAllBytes(Path.Combine(Root, "train", "shape0", "cmyk.jpg"), Image.EncodeCmykJpeg(cmyk));
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("METARUN_CACHE_DIR", oldCache);
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>Class c's shape: a bright disc whose place and colour depend on the class, on noise; h × w, 1 or 3 channels.</summary>
    private static Tensor Drawn(int cls, int variant, int h, int w, int channels)
    {
        var px = new byte[channels * h * w];
        var rng = new Random(cls * 1000 + variant);
        rng.NextBytes(px);
        for (var i = 0; i < px.Length; i++) px[i] = (byte)(px[i] / 6);
        double cy = h * (1 + cls % 3) / 4.0, cx = w * (1 + cls / 3 % 3) / 4.0, r = Math.Min(h, w) / 5.0 + rng.NextDouble();
        for (var y = 0; y < h; y++)
        for (var x = 0; x < w; x++)
            if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r)
                for (var ch = 0; ch < channels; ch++)
                    px[ch * h * w + y * w + x] = (byte)(120 + (cls * 37 + ch * 50) % 130);
        return Torch.From<byte>(px, channels, h, w);
    }

    /// <summary>n images: gray PNG 20×24, RGB PNG 32×32, RGB JPEG 28×36, then RGB PNG 40×30.</summary>
    private static void WriteClass(string path, int cls, int n)
    {
        Directory.CreateDirectory(path);
        for (var i = 0; i < n; i++)
        {
            var (h, w, c, jpeg) = (i % 4) switch { 0 => (20, 24, 1, false), 1 => (32, 32, 3, false), 2 => (28, 36, 3, true), _ => (40, 30, 3, false) };
            using var t = Drawn(cls, i, h, w, c);
            File.WriteAllBytes(Path.Combine(path, $"img{i}.{(jpeg ? "jpg" : "png")}"), jpeg ? Image.EncodeJpeg(t) : Image.EncodePng(t));
        }
    }

    private string Config(string algorithm, int ways, params string[] extra)
    {
        var path = Path.Combine(dir, $"{algorithm}.yaml");
        File.WriteAllText(path, $$"""
            name: folder-{{algorithm}}
            seed: 3
            threads: 1
            workers: 1
            data:
              dataset: folder
              root: {{Root}}
              image_size: 16
              train: {ways: {{ways}}, shots: 1, queries: 2}
              test: {ways: {{ways}}, shots: 1, queries: 2}
            model: {filters: 8}
            algorithm: {name: {{algorithm}}, iterations: 3, meta_batch_size: 2{{string.Concat(extra.Select(e => ", " + e))}}}
            eval: {interval: 3, episodes: 2}
            checkpoint: {interval: 3}
            """);
        return path;
    }

    private (int Code, string Out, string Err) Train(string config, string run, params string[] sets) =>
        CliRunner.Run([.. new[] { "train", config, "--out", Path.Combine(dir, run) }, .. sets.SelectMany(s => new[] { "--set", s })]);

    /// <summary>support/&lt;class&gt;/img0 and query/&lt;class&gt;/img1..3 of the test classes.</summary>
    private (string Support, string Query) SupportAndQuery(int classes)
    {
        var support = Path.Combine(dir, $"support{classes}");
        var query = Path.Combine(dir, $"query{classes}");
        foreach (var cls in Directory.GetDirectories(Path.Combine(Root, "test")).Order(StringComparer.Ordinal).Take(classes))
        {
            var name = Path.GetFileName(cls);
            Directory.CreateDirectory(Path.Combine(support, name));
            Directory.CreateDirectory(Path.Combine(query, name));
            var files = Directory.GetFiles(cls).Order(StringComparer.Ordinal).ToArray();
            File.Copy(files[0], Path.Combine(support, name, Path.GetFileName(files[0])));
            foreach (var f in files.Skip(1)) File.Copy(f, Path.Combine(query, name, Path.GetFileName(f)));
        }
        return (support, query);
    }

    [Fact]
    public void ADrawnFolderTrainsEvaluatesAndAdapts()
    {
        var (code, _, err) = Train(Config("protonet", 3), "proto");
        Assert.True(code == 0, err);
        Assert.Single(Directory.GetFiles(Cache, "folder-16px-*.bin"));
        (code, _, err) = CliRunner.Run("eval", "--checkpoint", Path.Combine(dir, "proto"), "--episodes", "4", "--out", Path.Combine(dir, "eval.json"));
        Assert.True(code == 0, err);

        // ProtoNet has no head: trained 3-way, it adapts to five new classes.
        var (support, query) = SupportAndQuery(5);
        var csv = Path.Combine(dir, "p.csv");
        string output;
        (code, output, err) = CliRunner.Run("adapt", "--checkpoint", Path.Combine(dir, "proto"), "--support", support, "--query", query, "--out", csv);
        Assert.True(code == 0, err);
        var lines = File.ReadAllLines(csv);
        Assert.Equal("image,predicted,probability,shape10,shape11,shape12,shape13,shape9,true,entropy,uncertain", lines[0]);
        Assert.Equal(16, lines.Length);
        var json = JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(csv, ".json"))).RootElement;
        var counts = json.GetProperty("confusion").GetProperty("counts").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        Assert.All(counts, row => Assert.Equal(3, row.Sum()));
        var correct = Enumerable.Range(0, 5).Sum(i => counts[i][i]);
        Assert.Equal(correct / 15.0, json.GetProperty("accuracy").GetDouble(), 6);
        Assert.Contains("accuracy", output);
        // Each row's probabilities add up to 1 and the predicted one is the largest.
        foreach (var row in lines.Skip(1).Select(l => l.Split(',')))
        {
            var p = row[3..8].Select(double.Parse).ToArray();
            Assert.Equal(1.0, p.Sum(), 4);
            Assert.Equal(double.Parse(row[2]), p.Max(), 6);
        }

        // A flat query folder: predictions only.
        var flat = Path.Combine(dir, "flat");
        Directory.CreateDirectory(flat);
        foreach (var f in Directory.GetFiles(Path.Combine(query, "shape9"))) File.Copy(f, Path.Combine(flat, Path.GetFileName(f)));
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", Path.Combine(dir, "proto"), "--support", support, "--query", flat, "--out", csv);
        Assert.True(code == 0, err);
        Assert.DoesNotContain(",true", File.ReadAllLines(csv)[0]);
        Assert.False(JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(csv, ".json"))).RootElement.TryGetProperty("accuracy", out _));

        // MAML's head has one output per training way: five classes are refused, naming who can take them.
        (code, _, err) = Train(Config("maml", 3, "inner_lr: 0.1"), "maml");
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", Path.Combine(dir, "maml"), "--support", support, "--query", query, "--out", csv);
        Assert.Equal(2, code);
        Assert.Contains("5 classes", err);
        Assert.Contains("protonet, matchingnet, relationnet, baseline, baseline++", err);
        var (support3, query3) = SupportAndQuery(3);
        var saved = Path.Combine(dir, "adapted.safetensors");
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", Path.Combine(dir, "maml"), "--support", support3, "--query", query3, "--steps", "2", "--out", csv, "--save-adapted", saved);
        Assert.True(code == 0, err);
        using (var file = Safetensors.Load(saved))
        {
            Assert.Equal("[\"shape10\",\"shape11\",\"shape12\"]", file.Metadata["classes"]);
            Assert.Equal([3L, 8L], file.Tensors["head.weight"].Shape);
        }
        Assert.Equal(2, JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(csv, ".json"))).RootElement.GetProperty("steps").GetInt32());

        // A support class without images, and an image that does not decode, are named (exit 3).
        Directory.CreateDirectory(Path.Combine(support3, "empty"));
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", Path.Combine(dir, "proto"), "--support", support3, "--query", query3, "--out", csv);
        Assert.Equal(3, code);
        Assert.Contains("'empty' has no image", err);
        File.WriteAllBytes(Path.Combine(support3, "empty", "broken.jpg"), [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", Path.Combine(dir, "proto"), "--support", support3, "--query", query3, "--out", csv);
        Assert.Equal(3, code);
        Assert.Contains(Path.Combine(support3, "empty", "broken.jpg"), err);
    }

    [Fact]
    public void ACorruptImageIsNamedAndTheCacheKept()
    {
        var config = Config("protonet", 3);
        var (code, _, err) = Train(config, "a");
        Assert.True(code == 0, err);
        var cached = Directory.GetFiles(Cache).Single();
        var bytes = File.ReadAllBytes(cached);

        var corrupt = Path.Combine(Root, "train", "shape1", "zz-corrupt.png");
        File.WriteAllBytes(corrupt, [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 1, 2, 3]);
        (code, _, err) = Train(config, "b");
        Assert.Equal(3, code);
        Assert.Contains(corrupt, err);
        Assert.Equal(cached, Directory.GetFiles(Cache).Single());
        Assert.Equal(bytes, File.ReadAllBytes(cached));

        // With the file gone the folder is as it was: its cache is read again, not rebuilt.
        File.Delete(corrupt);
        (code, _, err) = Train(config, "c");
        Assert.True(code == 0, err);
        Assert.Equal(cached, Directory.GetFiles(Cache).Single());
        Assert.DoesNotContain("decoding", err);

        // A changed folder is decoded again into a cache of its own.
        WriteClass(Path.Combine(Root, "train", "shape6"), 6, 3);
        (code, _, err) = Train(config, "d");
        Assert.True(code == 0, err);
        Assert.Contains("decoding", err);
        Assert.Equal(2, Directory.GetFiles(Cache).Length);
    }

    [Fact]
    public void TestClassesAreNeededOnlyByEvalAndValClassesOnlyByValidation()
    {
        Directory.Delete(Path.Combine(Root, "test"), recursive: true);
        var config = Config("protonet", 3);
        var (code, _, err) = Train(config, "no-test");
        Assert.True(code == 0, err);

        // eval refuses from the listing, before decoding: the broken image added here is never reached.
        var corrupt = Path.Combine(Root, "train", "shape1", "zz-corrupt.png");
        File.WriteAllBytes(corrupt, [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        (code, _, err) = CliRunner.Run("eval", Path.Combine(dir, "no-test"), "--episodes", "2");
        Assert.Equal(3, code);
        Assert.Contains($"{Root}: the test split has no classes, but metarun eval reads it", err);
        Assert.DoesNotContain("zz-corrupt", err);
        File.Delete(corrupt);

        Directory.Delete(Path.Combine(Root, "val"), recursive: true);
        (code, _, err) = Train(config, "no-val");
        Assert.Equal(3, code);
        Assert.Contains("the val split has no classes, but validation reads it", err);
        Assert.Contains("eval.interval: 0", err);
        Assert.False(Directory.Exists(Path.Combine(dir, "no-val")));
        (code, _, err) = Train(config, "no-val", "eval.interval=0");
        Assert.True(code == 0, err);

        // A split the command reads with fewer classes than the episodes' ways names the key.
        (code, _, err) = Train(config, "wide", "eval.interval=0", "data.train.ways=7");
        Assert.Equal(3, code);
        Assert.Contains("the train split has 6 classes, but data.train.ways asks for 7-way episodes", err);

        // A support folder of one class is a class count no classifier takes: exit 2, as docs/own-data.md says.
        var one = Path.Combine(dir, "one");
        Directory.CreateDirectory(Path.Combine(one, "shape0"));
        File.Copy(Path.Combine(Root, "train", "shape0", "img0.png"), Path.Combine(one, "shape0", "img0.png"));
        (code, _, err) = CliRunner.Run("adapt", "--checkpoint", Path.Combine(dir, "no-test"), "--support", one, "--query", one, "--out", Path.Combine(dir, "one.csv"));
        Assert.Equal(2, code);
        Assert.Contains("only one class ('shape0')", err);
    }

    [Fact]
    public void AClassFolderNameThatIsNotUtf8IsNamedAsSuch()
    {
        // .NET cannot write such a name itself: the shell's printf makes the Latin-1 byte.
        var made = System.Diagnostics.Process.Start("bash", ["-c", $"cp -r '{Path.Combine(Root, "train", "shape5")}' \"{Path.Combine(Root, "train")}/caf$(printf '\\351')\""])!;
        made.WaitForExit();
        Assert.Equal(0, made.ExitCode);
        var (code, _, err) = Train(Config("protonet", 3), "latin1");
        Assert.Equal(3, code);
        Assert.Contains("caf\uFFFD: this name is not valid UTF-8", err);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void AnImageWithoutReadPermissionIsNamedInTrainingAndAdapt()
    {
        var (code, _, err) = Train(Config("protonet", 3), "proto");
        Assert.True(code == 0, err);
        var writable = Path.Combine(dir, "open");
        Directory.CreateDirectory(writable, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupWrite
            | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);

        var (support, query) = SupportAndQuery(3);
        var hidden = Directory.GetFiles(Path.Combine(support, "shape10")).Single();
        File.SetUnixFileMode(hidden, UnixFileMode.None);
        (code, _, err) = ChildProcess.RunUnprivileged(["adapt", "--checkpoint", Path.Combine(dir, "proto"), "--support", support, "--query", query, "--out", Path.Combine(writable, "p.csv")], writable);
        Assert.Equal(3, code);
        Assert.Contains($"{hidden}: cannot read the image (permission denied)", err);

        var train = Path.Combine(Root, "train", "shape2", "img1.png");
        File.SetUnixFileMode(train, UnixFileMode.None);
        (code, _, err) = ChildProcess.RunUnprivileged(["train", Config("protonet", 3), "--out", Path.Combine(writable, "run")], writable);
        Assert.Equal(3, code);
        Assert.Contains($"{train}: cannot read the image (permission denied)", err);
        Assert.DoesNotContain("Exception", err);
    }

    [Fact]
    public void TooFewImagesStopOrAreLeftOutWithAWarning()
    {
        WriteClass(Path.Combine(Root, "train", "small"), 20, 2);
        var config = Config("protonet", 3);
        var (code, _, err) = Train(config, "a");
        Assert.Equal(3, code);
        Assert.Contains("'train/small' (2 images, train episodes need 3)", err);
        Assert.Contains("data.skip_small_classes", err);
        (code, _, err) = Train(config, "b", "data.skip_small_classes=true");
        Assert.True(code == 0, err);
        Assert.Contains("leaving out 1 class(es)", err);
        Assert.Contains("'train/small'", err);
    }

    [Fact]
    public void ASeededRatioOrClassListsSplitAFlatFolder()
    {
        var flat = Path.Combine(dir, "flat");
        for (var c = 0; c < 10; c++) WriteClass(Path.Combine(flat, $"k{c}"), c, 3);
        var data = new MetaRun.Config.DataConfig { Dataset = MetaRun.Config.Dataset.Folder, Root = flat, SplitRatio = [0.6, 0.2, 0.2], SplitSeed = 5 };
        var layout = MetaRun.Data.FolderDataset.ReadLayout(flat, data);
        Assert.Equal([6, 2, 2], new[] { MetaRun.Data.Split.Train, MetaRun.Data.Split.Val, MetaRun.Data.Split.Test }.Select(s => layout.Count(c => c.Split == s)));
        Assert.Equal(layout.Select(c => (c.Split, c.Name)), MetaRun.Data.FolderDataset.ReadLayout(flat, data).Select(c => (c.Split, c.Name)));
        data.SplitSeed = 6;
        Assert.NotEqual(layout.Select(c => (c.Split, c.Name)), MetaRun.Data.FolderDataset.ReadLayout(flat, data).Select(c => (c.Split, c.Name)));

        var noRatio = new MetaRun.Config.DataConfig { Dataset = MetaRun.Config.Dataset.Folder, Root = flat };
        Assert.Contains("data.split_ratio", Assert.Throws<ConfigException>(() => MetaRun.Data.FolderDataset.ReadLayout(flat, noRatio)).Message);
        File.WriteAllLines(Path.Combine(flat, "train.txt"), ["k0", "k1", "# a comment", "k2"]);
        File.WriteAllLines(Path.Combine(flat, "test.txt"), ["k3", "k9"]);
        var listed = MetaRun.Data.FolderDataset.ReadLayout(flat, noRatio);
        Assert.Equal(["k0", "k1", "k2"], listed.Where(c => c.Split == MetaRun.Data.Split.Train).Select(c => c.Name));
        Assert.Equal(["k3", "k9"], listed.Where(c => c.Split == MetaRun.Data.Split.Test).Select(c => c.Name));
        File.WriteAllLines(Path.Combine(flat, "test.txt"), ["k3", "nope"]);
        Assert.Contains("test.txt:2", Assert.Throws<DataException>(() => MetaRun.Data.FolderDataset.ReadLayout(flat, noRatio)).Message);
    }

    /// <summary>A PNG written chunk by chunk (the native encoder writes only 8-bit gray and RGB): rows of raw samples, each behind filter byte 0.</summary>
    private static byte[] Png(int w, int h, byte colorType, byte depth, byte[] rows, byte[]? palette = null)
    {
        static uint Crc(ReadOnlySpan<byte> data)
        {
            var c = 0xFFFFFFFFu;
            foreach (var b in data)
            {
                c ^= b;
                for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            return ~c;
        }
        var file = new MemoryStream();
        file.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        void Chunk(string type, byte[] data)
        {
            var body = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            file.Write(BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(data.Length)));
            file.Write(body);
            file.Write(BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(Crc(body))));
        }
        var ihdr = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        (ihdr[8], ihdr[9]) = (depth, colorType);
        Chunk("IHDR", ihdr);
        if (palette != null) Chunk("PLTE", palette);
        var z = new MemoryStream();
        using (var zs = new System.IO.Compression.ZLibStream(z, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true)) zs.Write(rows);
        Chunk("IDAT", z.ToArray());
        Chunk("IEND", []);
        return file.ToArray();
    }

    [Fact]
    public void PalettedAndSixteenBitPngsDecodeToTheirValues()
    {
        // 2×2 palette image: indices 0 1 / 2 0 into red, green, blue.
        var palette = Png(2, 2, 3, 8, [0, 0, 1, 0, 2, 0], [255, 0, 0, 0, 255, 0, 0, 0, 255]);
        using (var rgb = Image.Decode(palette, 3))
            Assert.Equal(new byte[] { 255, 0, 0, 255, /**/ 0, 255, 0, 0, /**/ 0, 0, 255, 0 }, rgb.ToArray<byte>());
        // 16-bit gray 2×1: 0x1234 and 0xFF00 keep their high bytes; as RGB the gray is copied.
        var sixteen = Png(2, 1, 0, 16, [0, 0x12, 0x34, 0xFF, 0x00]);
        using (var gray = Image.Decode(sixteen, 1)) Assert.Equal(new byte[] { 0x12, 0xFF }, gray.ToArray<byte>());
        using (var rgb = Image.Decode(sixteen, 3)) Assert.Equal(new byte[] { 0x12, 0xFF, 0x12, 0xFF, 0x12, 0xFF }, rgb.ToArray<byte>());
        // 16-bit RGB 1×1 with its alpha dropped.
        var rgba = Png(1, 1, 6, 16, [0, 0xA0, 0, 0x50, 0, 0x10, 0, 0x80, 0]);
        using (var rgb = Image.Decode(rgba, 3)) Assert.Equal(new byte[] { 0xA0, 0x50, 0x10 }, rgb.ToArray<byte>());
        // And such files train like any other: a class of them in the folder.
        var cls = Path.Combine(Root, "train", "shape5");
        for (var i = 0; i < 3; i++)
        {
            var px = new byte[1 + 8 * 2];
            for (var x = 0; x < 8; x++) px[1 + 2 * x] = (byte)(x * 30 + i);
            var rows = Enumerable.Range(0, 8).SelectMany(_ => px).ToArray();
            File.WriteAllBytes(Path.Combine(cls, $"sixteen{i}.png"), Png(8, 8, 0, 16, rows));
        }
        var (code, _, err) = Train(Config("protonet", 3), "sixteen");
        Assert.True(code == 0, err);
    }

    [Fact]
    public void CmykJpegsDecodeToTheirColours()
    {
        using var rgb = Drawn(4, 1, 24, 24, 3);
        var jpeg = Image.EncodeCmykJpeg(rgb, quality: 100);
        using var back = Image.Decode(jpeg, 3);
        using var plain = Image.Decode(Image.EncodeJpeg(rgb, quality: 100), 3);
        var a = rgb.ToArray<byte>();
        var b = back.ToArray<byte>();
        var p = plain.ToArray<byte>();
        // No worse than an ordinary JPEG of the same image, give or take rounding in the ink conversion.
        double Err(byte[] x) => x.Select((v, i) => Math.Abs(v - a[i])).Average();
        Assert.InRange(Err(b), 0, Err(p) + 2);
        using var gray = Image.Decode(jpeg, 1);
        Assert.Equal([1L, 24L, 24L], gray.Shape);
    }
}
