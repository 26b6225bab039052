using System.Text;

namespace MetaRun.Data;

/// <summary>
/// miniImageNet with Ravi and Larochelle's split (64 / 16 / 20 classes × 600 images) in the usual
/// layout: &lt;root&gt;/miniimagenet/images/*.jpg and train.csv, val.csv, test.csv, each with the
/// header "filename,label" and one row per image. Classes keep the order in which the CSV first
/// names them; a class's images keep the CSV's order.
/// </summary>
public static class MiniImageNet
{
    public const string Dataset = "miniimagenet";
    public const int DefaultImageSize = 84;
    public const int ClassImages = 600;
    public static readonly IReadOnlyDictionary<Split, int> RaviClassCounts = new Dictionary<Split, int> { [Split.Train] = 64, [Split.Val] = 16, [Split.Test] = 20 };

    /// <summary>Per-channel (R, G, B) mean and standard deviation of the pixel values in [0, 1]: the miniImageNet training-set statistics used by MetaOptNet, FEAT and others (120.39586422, 115.59361427, 104.54012653) / 255 and (70.68188272, 68.27635443, 72.54505529) / 255.</summary>
    public static readonly float[] Mean = [120.39586422f / 255f, 115.59361427f / 255f, 104.54012653f / 255f];
    public static readonly float[] Std = [70.68188272f / 255f, 68.27635443f / 255f, 72.54505529f / 255f];

    internal static readonly Split[] SplitOrder = [Split.Train, Split.Val, Split.Test];

    public static readonly IReadOnlyDictionary<Split, string> CsvNames = new Dictionary<Split, string>
    {
        [Split.Train] = "train.csv",
        [Split.Val] = "val.csv",
        [Split.Test] = "test.csv",
    };

    /// <summary>One class of a split: its label and its images' file names (relative to images/), with the CSV line of each.</summary>
    public sealed record ClassList(Split Split, string Label, List<(string File, int Line)> Images);

    /// <summary>Reads the three CSVs; a DataException naming the file and line for anything malformed or missing.</summary>
    public static List<ClassList> ReadCsvs(string datasetDir, bool checkImages = true)
    {
        var images = Path.Combine(datasetDir, "images");
        if (!Directory.Exists(images)) throw new DataException($"{images}: missing folder of miniImageNet images (expected images/*.jpg beside train.csv, val.csv, test.csv)");
        var classes = new List<ClassList>();
        foreach (var split in SplitOrder)
        {
            var name = CsvNames[split];
            var csv = Path.Combine(datasetDir, name);
            if (!File.Exists(csv)) throw new DataException($"{csv}: missing miniImageNet split file");
            string[] lines;
            try { lines = File.ReadAllLines(csv); }
            catch (IOException e) { throw new DataException($"{csv}: cannot read: {e.Message}", e); }
            if (lines.Length == 0 || !string.Equals(lines[0].Trim().TrimStart('\uFEFF'), "filename,label", StringComparison.OrdinalIgnoreCase))
                throw new DataException($"{csv}:1: expected the header 'filename,label'");
            var byLabel = new Dictionary<string, ClassList>(StringComparer.Ordinal);
            for (var i = 1; i < lines.Length; i++)
            {
                var line = lines[i].Trim();
                if (line.Length == 0) continue;
                var fields = line.Split(',');
                if (fields.Length != 2 || fields[0].Trim().Length == 0 || fields[1].Trim().Length == 0)
                    throw new DataException($"{csv}:{i + 1}: expected 'filename,label', got '{line}'");
                var (file, label) = (fields[0].Trim(), fields[1].Trim());
                if (file.Contains('/') || file.Contains('\\') || file is "." or "..")
                    throw new DataException($"{csv}:{i + 1}: '{file}' must be a file name inside images/");
                if (checkImages && !File.Exists(Path.Combine(images, file)))
                    throw new DataException($"{csv}:{i + 1}: image {Path.Combine(images, file)} not found");
                if (!byLabel.TryGetValue(label, out var cls))
                {
                    byLabel[label] = cls = new ClassList(split, label, []);
                    classes.Add(cls);
                }
                cls.Images.Add((file, i + 1));
            }
            if (byLabel.Count == 0) throw new DataException($"{csv}: names no images");
        }
        return classes;
    }

    public static ImageTaskFamily Open(string datasetDir, int imageSize, long seed, DataOptions options)
    {
        var size = imageSize > 0 ? imageSize : DefaultImageSize;
        var classes = ReadCsvs(datasetDir);
        var store = LoadStore(datasetDir, classes, size, options);
        var splits = new Dictionary<Split, SplitClass[]>();
        foreach (var split in SplitOrder)
            splits[split] = [.. classes.Select((c, i) => (c, i)).Where(x => x.c.Split == split).Select(x => new SplitClass(x.i, 0))];
        var names = classes.Select(c => $"{ImageTaskFamily.Lower(c.Split)}/{c.Label}").ToArray();
        var format = ImageFormat.MiniImageNet(size);
        return new ImageTaskFamily(MetaRun.Config.Dataset.MiniImageNet, store, splits, names, format.Scale, format.Offset, seed, options);
    }

    public static ImageStore LoadStore(string datasetDir, List<ClassList> classes, int size, DataOptions options)
    {
        var prep = ImageFormat.MiniImageNet(size).Prep;
        var images = Path.Combine(datasetDir, "images");
        var files = classes.SelectMany(c => c.Images.Select(i => i.File)).ToArray();
        var sb = new StringBuilder();
        foreach (var split in SplitOrder) sb.Append(File.ReadAllText(Path.Combine(datasetDir, CsvNames[split]))).Append('\0');
        foreach (var f in files)
        {
            var info = new FileInfo(Path.Combine(images, f));
            sb.Append(f).Append(':').Append(info.Length).Append(':').Append(info.LastWriteTimeUtc.Ticks).Append('\n');
        }
        var key = $"{Dataset};{prep.Key};{ImagePreparation.DecoderVersion};files={files.Length}:{XxHash64.Hash(sb.ToString()):x16}";
        var classSizes = classes.Select(c => c.Images.Count).ToArray();
        string? cachePath = null;
        if (options.UseCache)
        {
            cachePath = ImageCache.PathFor(ImageCache.ResolveDir(options), Dataset, size, key);
            var cached = ImageCache.TryLoad(cachePath, key, 3, size, size, classSizes, options.Log);
            if (cached != null) return cached;
        }
        options.Log?.Invoke($"miniimagenet: decoding {files.Length} images from {images} (once; later runs read the cache)");
        using var source = new FileImages(images, files);
        var store = ImagePreparation.Prepare(source, classSizes, prep, options, Dataset);
        if (cachePath != null) ImageCache.TrySave(cachePath, key, store, options.Log);
        return store;
    }
}

/// <summary>Image files read in parallel.</summary>
internal sealed class FileImages(string dir, string[] files) : IEncodedImages
{
    public int Count => files.Length;

    public string NameOf(int index) => Path.Combine(dir, files[index]);

    public void Read(int start, byte[][] into, ParallelOptions parallel)
    {
        try
        {
            Parallel.For(0, into.Length, parallel, i =>
            {
                var path = NameOf(start + i);
                try { into[i] = File.ReadAllBytes(path); }
                catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { throw new DataException($"{path}: image not found"); }
                catch (IOException e) { throw new DataException($"{path}: cannot read: {e.Message}", e); }
                catch (UnauthorizedAccessException e) { throw new DataException($"{path}: cannot read the image (permission denied)", e); }
            });
        }
        catch (AggregateException e) when (e.Flatten().InnerExceptions.OfType<DataException>().FirstOrDefault() is { } first)
        {
            throw first;
        }
    }

    public void Dispose() { }
}
