using System.Text;
using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>
/// Someone's own images (data.dataset: folder): one subfolder per class under data.root, image
/// files inside (PNG of any colour type and bit depth, JPEG gray, YCbCr or CMYK; any size),
/// resized to data.image_size with the benchmarks' antialiased resize and cached like them.
/// Classes are split by, in this order: top-level train/ val/ test/ folders; train.txt,
/// val.txt, test.txt class lists (one class folder per line); or data.split_ratio over the
/// class folders, shuffled with data.split_seed. In the train/ val/ test/ layout a split may
/// have a domain level, split/DOMAIN/CLASS/images: the training split's domain folders are then
/// its domains (for MLDG). See docs/own-data.md.
/// </summary>
public static class FolderDataset
{
    public const string Dataset = "folder";
    public const int DefaultImageSize = 84;

    /// <summary>File extensions read as images (case-insensitive).</summary>
    public static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg"];

    /// <summary>Image formats people have that the native decoders (libpng, libjpeg-turbo) do not read: an error naming the file, not a silent skip.</summary>
    public static readonly string[] UnsupportedExtensions = [".bmp", ".gif", ".tif", ".tiff", ".webp", ".heic"];

    private static readonly Split[] SplitOrder = [Split.Train, Split.Val, Split.Test];

    /// <summary>A class folder: its name in messages and splits ("train/cat" or "cat"), and its image files in ordinal order.</summary>
    /// <param name="Domain">The domain folder the class sits in (split/DOMAIN/CLASS), or null where the split has no domain level.</param>
    public sealed record ClassFolder(Split Split, string Name, string Dir, string[] Files, string? Domain = null);

    public static ImageTaskFamily Open(DataConfig data, long seed, DataOptions options)
    {
        if (string.IsNullOrWhiteSpace(data.Root))
            throw new ConfigException("data.root: the folder data set needs data.root, the folder that holds one subfolder per class");
        var root = DataRoot.Expand(data.Root);
        var format = ImageFormat.For(data);
        var classes = Keep(ReadLayout(root, data), data, options.Log);
        CheckSplits(root, classes, data, options);
        var store = LoadStore(root, classes, format, options);
        var splits = SplitOrder.ToDictionary(s => s, s => classes.Select((c, i) => (c, i)).Where(x => x.c.Split == s).Select(x => new SplitClass(x.i, 0)).ToArray());
        var train = classes.Where(c => c.Split == Split.Train).ToList();
        // Training classes are store-ordered first, so a class's index in the training split is its index here.
        var domains = train.Count > 0 && train.All(c => c.Domain != null)
            ? train.Select((c, i) => (c.Domain!, i)).GroupBy(x => x.Item1, StringComparer.Ordinal).Select(g => (g.Key, g.Select(x => x.i).ToArray())).ToList()
            : null;
        return new ImageTaskFamily(MetaRun.Config.Dataset.Folder, store, splits, [.. classes.Select(c => c.Name)], format.Scale, format.Offset, seed, options, trainDomains: domains);
    }

    /// <summary>
    /// Each split the command reads has classes enough for its episodes; a split it does not read
    /// may be absent (docs/own-data.md). Checked on the folder listing, before any image is decoded.
    /// </summary>
    private static void CheckSplits(string root, List<ClassFolder> classes, DataConfig data, DataOptions options)
    {
        foreach (var split in SplitOrder.Where(options.Reads))
        {
            var count = classes.Count(c => c.Split == split);
            var need = options.Splits?[split] ?? (split == Split.Train ? data.Train.Ways : data.Test.Ways);
            var name = Lower(split);
            // Without a command's list (a tool opening the folder) a split may be absent.
            if (count == 0 && options.Splits == null) continue;
            if (count == 0)
                throw new DataException($"{root}: the {name} split has no classes, but {ReadBy(split)}");
            if (count < need)
                throw new DataException($"{root}: the {name} split has {count} classes, but {TaskFamilies.WaysKey(split)} asks for {need}-way episodes");
        }
    }

    private static string ReadBy(Split split) => split switch
    {
        Split.Train => "training draws its episodes from it (add class folders under train/, or list them in train.txt)",
        Split.Val => "validation reads it (add class folders under val/ or list them in val.txt, or set eval.interval: 0 to train without validating)",
        _ => "metarun eval reads it (add class folders under test/ or list them in test.txt, or evaluate another split with --split val)",
    };

    /// <summary>The classes of each split, in store order (train, val, test; ordinal names within a split).</summary>
    public static List<ClassFolder> ReadLayout(string root, DataConfig data)
    {
        if (!Directory.Exists(root)) throw new DataException($"{root}: data.root folder not found");
        var splitDirs = SplitOrder.Select(s => Path.Combine(root, Lower(s))).ToArray();
        var listFiles = SplitOrder.Select(s => Path.Combine(root, Lower(s) + ".txt")).ToArray();
        var hasDirs = splitDirs.Any(Directory.Exists);
        var hasLists = listFiles.Any(File.Exists);
        if ((hasDirs || hasLists) && data.SplitRatio.Count > 0)
            throw new ConfigException($"data.split_ratio: {root} already splits its classes ({(hasDirs ? "train/ val/ test/ folders" : "train.txt val.txt test.txt")}); remove data.split_ratio or that layout");
        var result = new List<ClassFolder>();
        if (hasDirs)
        {
            if (!Directory.Exists(splitDirs[0])) throw new DataException($"{splitDirs[0]}: missing (a split layout needs train/, and test/ to evaluate)");
            for (var s = 0; s < 3; s++)
                if (Directory.Exists(splitDirs[s]))
                    result.AddRange(ReadSplitFolder(SplitOrder[s], splitDirs[s]));
        }
        else if (hasLists)
        {
            var seen = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var s = 0; s < 3; s++)
            {
                if (!File.Exists(listFiles[s])) continue;
                var lines = File.ReadAllLines(listFiles[s]);
                for (var i = 0; i < lines.Length; i++)
                {
                    var name = lines[i].Trim();
                    if (name.Length == 0 || name.StartsWith('#')) continue;
                    var where = $"{listFiles[s]}:{i + 1}";
                    var dir = Path.Combine(root, name);
                    if (!Directory.Exists(dir)) throw new DataException($"{where}: class folder {dir} not found");
                    if (!seen.TryAdd(name, where)) throw new DataException($"{where}: class '{name}' is already listed at {seen[name]}");
                    result.Add(Read(SplitOrder[s], name, dir));
                }
            }
        }
        else
        {
            if (data.SplitRatio.Count == 0)
                throw new ConfigException($"data.split_ratio: {root} has no train/ val/ test/ folders and no train.txt val.txt test.txt class lists; set data.split_ratio (like [0.6, 0.2, 0.2]) to split its class folders");
            var dirs = Subfolders(root);
            new SplitMix64(SplitMix64.Mix((ulong)data.SplitSeed ^ 0x666F6C646572UL)).Shuffle<string>(dirs);
            var nTrain = (int)Math.Round(data.SplitRatio[0] * dirs.Length);
            var nVal = Math.Min(dirs.Length - nTrain, (int)Math.Round(data.SplitRatio[1] * dirs.Length));
            for (var i = 0; i < dirs.Length; i++)
                result.Add(Read(i < nTrain ? Split.Train : i < nTrain + nVal ? Split.Val : Split.Test, Path.GetFileName(dirs[i]), dirs[i]));
            // Store order: train, val, test, each in name order, so the cache does not depend on the shuffle's layout.
            result = [.. result.OrderBy(c => c.Split).ThenBy(c => c.Name, StringComparer.Ordinal)];
        }
        if (result.Count == 0) throw new DataException($"{root}: no class folders (expected one subfolder of images per class)");
        return result;
    }

    /// <summary>
    /// The classes of a split folder: its subfolders are class folders (images inside), or all
    /// domain folders (class folders inside, no images); a mix is an error, since a folder of
    /// images beside folders of classes is most likely a misplaced class.
    /// </summary>
    private static List<ClassFolder> ReadSplitFolder(Split split, string splitDir)
    {
        var subs = Subfolders(splitDir);
        bool IsDomain(string d) => Subfolders(d).Length > 0 && !Directory.GetFiles(d).Any(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()));
        var domainDirs = subs.Where(IsDomain).ToArray();
        var prefix = Lower(split);
        if (domainDirs.Length == 0) return [.. subs.Select(d => Read(split, $"{prefix}/{Path.GetFileName(d)}", d))];
        if (domainDirs.Length < subs.Length)
        {
            var classDir = subs.First(d => !IsDomain(d));
            throw new DataException($"{splitDir}: mixes domain folders ('{Path.GetFileName(domainDirs[0])}' holds class folders) with class folders ('{Path.GetFileName(classDir)}' holds images); put every class one level deeper, in a domain folder ({prefix}/DOMAIN/CLASS/), or none");
        }
        return [.. domainDirs.SelectMany(domain => Subfolders(domain).Select(d =>
            Read(split, $"{prefix}/{Path.GetFileName(domain)}/{Path.GetFileName(d)}", d) with { Domain = Path.GetFileName(domain) }))];
    }

    /// <summary>Leaves out, or stops at, classes with fewer images than their split's episodes take.</summary>
    private static List<ClassFolder> Keep(List<ClassFolder> classes, DataConfig data, Action<string>? log)
    {
        int Need(Split s) => s == Split.Train ? data.Train.Shots + data.Train.Queries : data.Test.Shots + data.Test.Queries;
        var small = classes.Where(c => c.Files.Length < Need(c.Split)).ToList();
        if (small.Count == 0) return classes;
        string Describe(ClassFolder c) => $"'{c.Name}' ({c.Files.Length} images, {Lower(c.Split)} episodes need {Need(c.Split)})";
        if (!data.SkipSmallClasses)
        {
            var more = small.Count == 1 ? "" : $"; so have {small.Count - 1} more: {string.Join(", ", small.Skip(1).Take(10).Select(Describe))}{(small.Count > 11 ? ", …" : "")}";
            throw new DataException($"{small[0].Dir}: class {Describe(small[0])} has too few images{more}; add images, lower data.train/test shots or queries, or set data.skip_small_classes: true to leave such classes out");
        }
        log?.Invoke($"warning: leaving out {small.Count} class(es) with too few images (data.skip_small_classes): {string.Join(", ", small.Select(Describe))}");
        return [.. classes.Except(small)];
    }

    /// <summary>
    /// The visible subfolders of <paramref name="dir"/>, in ordinal order. A symbolic link there
    /// that leads nowhere (its target gone, or a loop) would otherwise vanish from the listing,
    /// and a class with it: it is a data error naming the link.
    /// </summary>
    public static string[] Subfolders(string dir)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
        {
            if (Path.GetFileName(entry).StartsWith('.') || Directory.Exists(entry)) continue;
            var info = new FileInfo(entry);
            var target = info.LinkTarget;
            if (target == null) continue;
            bool broken;
            // A loop fails to resolve (ELOOP); a dangling link resolves to nothing that exists.
            try { broken = info.ResolveLinkTarget(returnFinalTarget: true) is not { Exists: true }; }
            catch (IOException) { broken = true; }
            if (broken)
                throw new DataException($"{entry}: a symbolic link to {target}, which does not exist or loops back on itself; a class folder behind it would be left out. Fix or remove the link");
        }
        var subs = Directory.GetDirectories(dir).Where(d => !Path.GetFileName(d).StartsWith('.')).Order(StringComparer.Ordinal).ToArray();
        foreach (var d in subs) RefuseUnreadableName(d);
        return subs;
    }

    /// <summary>
    /// .NET reads Linux file names as UTF-8 and replaces bytes that are not (a Latin-1 name from
    /// an old archive) with U+FFFD; the name it gives then opens nothing, so such an entry is a
    /// data error naming it, not a "part of the path" not found later.
    /// </summary>
    private static void RefuseUnreadableName(string path)
    {
        if (Path.GetFileName(path).Contains('\uFFFD'))
            throw new DataException($"{path}: this name is not valid UTF-8 (� marks the bytes that are not), and MetaRun reads names as UTF-8; rename it (for example with 'convmv -f latin1 -t utf8 -r --notest FOLDER')");
    }

    /// <summary>The image files of one class folder (hidden and non-image files are not images; formats the decoders cannot read are an error).</summary>
    public static ClassFolder Read(Split split, string name, string dir)
    {
        var files = new List<string>();
        foreach (var f in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
        {
            var file = Path.GetFileName(f);
            if (file.StartsWith('.')) continue;
            var ext = Path.GetExtension(file).ToLowerInvariant();
            if (UnsupportedExtensions.Contains(ext))
                throw new DataException($"{f}: {ext.TrimStart('.').ToUpperInvariant()} images are not read (MetaRun decodes PNG and JPEG); convert the folder, e.g. with 'mogrify -format png *{ext}'");
            if (!ImageExtensions.Contains(ext)) continue;
            RefuseUnreadableName(f);
            files.Add(file);
        }
        return new ClassFolder(split, name, dir, [.. files]);
    }

    /// <summary>The decoded store: from the cache when current (same files, sizes and contents, same preprocessing), else prepared and cached.</summary>
    public static ImageStore LoadStore(string root, List<ClassFolder> classes, ImageFormat format, DataOptions options)
    {
        var prep = format.Prep;
        var paths = classes.SelectMany(c => c.Files.Select(f => Path.Combine(c.Dir, f))).ToArray();
        var sb = new StringBuilder();
        foreach (var c in classes) sb.Append(Lower(c.Split)).Append('/').Append(c.Name).Append(':').Append(c.Files.Length).Append('\n');
        // Size and modification time alone miss an image replaced by another of the same size with
        // its time restored (touch -r, rsync -t, a restore from backup): each file's content is in the key.
        var contents = new ulong[paths.Length];
        try
        {
            Parallel.For(0, paths.Length, options.Parallel, i =>
            {
                try { contents[i] = XxHash64.Hash(File.ReadAllBytes(paths[i])); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new DataException($"{paths[i]}: cannot read the image ({(e is UnauthorizedAccessException ? "permission denied" : e.Message)})", e);
                }
            });
        }
        catch (AggregateException e) when (e.Flatten().InnerExceptions.OfType<DataException>().FirstOrDefault() is { } first)
        {
            throw first;
        }
        for (var i = 0; i < paths.Length; i++)
        {
            var info = new FileInfo(paths[i]);
            sb.Append(Path.GetRelativePath(root, paths[i])).Append(':').Append(info.Length).Append(':').Append(contents[i].ToString("x16")).Append('\n');
        }
        var key = $"{Dataset};{prep.Key};{ImagePreparation.DecoderVersion};root={root};files={paths.Length}:{XxHash64.Hash(sb.ToString()):x16}";
        var classSizes = classes.Select(c => c.Files.Length).ToArray();
        string? cachePath = null;
        if (options.UseCache)
        {
            cachePath = ImageCache.PathFor(ImageCache.ResolveDir(options), Dataset, prep.Size, key);
            var cached = ImageCache.TryLoad(cachePath, key, prep.Channels, prep.Size, prep.Size, classSizes, options.Log);
            if (cached != null) return cached;
        }
        options.Log?.Invoke($"folder: decoding {paths.Length} images from {root} (once; later runs read the cache)");
        using var source = new FileImages(root, [.. paths.Select(p => Path.GetRelativePath(root, p))]);
        var store = ImagePreparation.Prepare(source, classSizes, prep, options, Dataset);
        if (cachePath != null) ImageCache.TrySave(cachePath, key, store, options.Log);
        return store;
    }

    /// <summary>Decodes and resizes image files (absolute paths) into a store of one class per group, without the cache: adapt's support and query images.</summary>
    public static ImageStore Decode(IReadOnlyList<string[]> groups, ImageFormat format, DataOptions options)
    {
        var paths = groups.SelectMany(g => g).ToArray();
        using var source = new FileImages("/", [.. paths.Select(Path.GetFullPath)]);
        return ImagePreparation.Prepare(source, [.. groups.Select(g => g.Length)], format.Prep, options, "adapt");
    }

    private static string Lower(Split s) => ImageTaskFamily.Lower(s);
}
