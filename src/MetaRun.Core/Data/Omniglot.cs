using System.IO.Compression;
using System.Text;
using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>
/// Omniglot (Lake et al. 2015) in the official release's layout: images_background.zip and
/// images_evaluation.zip (or the same folders unpacked) under &lt;data root&gt;/omniglot. Every
/// one of the 1623 characters × 20 drawers must be there: the file list comes from
/// <see cref="Manifest"/>, so a missing file is named, never silently skipped.
/// </summary>
public static class Omniglot
{
    public const string Dataset = "omniglot";
    public const int DefaultImageSize = 28;
    public const int SourceImageSize = 105;
    public const int Drawers = 20;
    public const int CharacterCount = 1623;
    public const int AlphabetCount = 50;
    public static readonly string[] Parts = ["images_background", "images_evaluation"];

    public const string BackgroundUrl = "https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip";
    public const string EvaluationUrl = "https://github.com/brendenlake/omniglot/raw/master/python/images_evaluation.zip";

    /// <summary>MD5 of the official zips (the same values torchvision checks).</summary>
    public static readonly IReadOnlyDictionary<string, string> OfficialMd5 = new Dictionary<string, string>
    {
        ["images_background.zip"] = "68d2efa1b9178cc56df9314c21c6e718",
        ["images_evaluation.zip"] = "6b91aef0f799c5bb55b94e3f2daec811",
    };

    /// <summary>One alphabet of the release: its part, folder name, character count and the id of its character01.</summary>
    public sealed record Alphabet(string Part, string Name, int Characters, int FirstId);

    /// <summary>The 50 alphabets (30 background, 20 evaluation) in sorted order, as released.</summary>
    public static IReadOnlyList<Alphabet> Manifest { get; } =
    [
        new("images_background", "Alphabet_of_the_Magi", 20, 709),
        new("images_background", "Anglo-Saxon_Futhorc", 29, 296),
        new("images_background", "Arcadian", 26, 1),
        new("images_background", "Armenian", 41, 27),
        new("images_background", "Asomtavruli_(Georgian)", 40, 68),
        new("images_background", "Balinese", 24, 108),
        new("images_background", "Bengali", 46, 132),
        new("images_background", "Blackfoot_(Canadian_Aboriginal_Syllabics)", 14, 178),
        new("images_background", "Braille", 26, 192),
        new("images_background", "Burmese_(Myanmar)", 34, 770),
        new("images_background", "Cyrillic", 33, 218),
        new("images_background", "Early_Aramaic", 22, 251),
        new("images_background", "Futurama", 26, 325),
        new("images_background", "Grantha", 43, 351),
        new("images_background", "Greek", 24, 394),
        new("images_background", "Gujarati", 48, 418),
        new("images_background", "Hebrew", 22, 466),
        new("images_background", "Inuktitut_(Canadian_Aboriginal_Syllabics)", 16, 540),
        new("images_background", "Japanese_(hiragana)", 52, 488),
        new("images_background", "Japanese_(katakana)", 47, 596),
        new("images_background", "Korean", 40, 643),
        new("images_background", "Latin", 26, 683),
        new("images_background", "Malay_(Jawi_-_Arabic)", 40, 556),
        new("images_background", "Mkhedruli_(Georgian)", 41, 729),
        new("images_background", "N_Ko", 33, 804),
        new("images_background", "Ojibwe_(Canadian_Aboriginal_Syllabics)", 14, 837),
        new("images_background", "Sanskrit", 42, 851),
        new("images_background", "Syriac_(Estrangelo)", 23, 273),
        new("images_background", "Tagalog", 17, 893),
        new("images_background", "Tifinagh", 55, 910),
        new("images_evaluation", "Angelic", 20, 965),
        new("images_evaluation", "Atemayar_Qelisayer", 26, 985),
        new("images_evaluation", "Atlantean", 26, 1011),
        new("images_evaluation", "Aurek-Besh", 26, 1037),
        new("images_evaluation", "Avesta", 26, 1063),
        new("images_evaluation", "Ge_ez", 26, 1089),
        new("images_evaluation", "Glagolitic", 45, 1115),
        new("images_evaluation", "Gurmukhi", 45, 1160),
        new("images_evaluation", "Kannada", 41, 1205),
        new("images_evaluation", "Keble", 26, 1246),
        new("images_evaluation", "Malayalam", 47, 1272),
        new("images_evaluation", "Manipuri", 40, 1319),
        new("images_evaluation", "Mongolian", 30, 1359),
        new("images_evaluation", "Old_Church_Slavonic_(Cyrillic)", 45, 1389),
        new("images_evaluation", "Oriya", 46, 1434),
        new("images_evaluation", "Sylheti", 28, 1503),
        new("images_evaluation", "Syriac_(Serto)", 23, 1480),
        new("images_evaluation", "Tengwar", 25, 1531),
        new("images_evaluation", "Tibetan", 42, 1556),
        new("images_evaluation", "ULOG", 26, 1598),
    ];

    /// <summary>One character: its index in store order (0..1622), alphabet, and number within the alphabet (1-based).</summary>
    public sealed record Character(int Index, Alphabet Alphabet, int Number)
    {
        public int Id => Alphabet.FirstId + Number - 1;
        /// <summary>"images_background/Arcadian/character01".</summary>
        public string Folder => $"{Alphabet.Part}/{Alphabet.Name}/character{Number:00}";
        /// <summary>The relative path of drawer d's image (1-based), as in the zip.</summary>
        public string ImagePath(int drawer) => $"{Folder}/{Id:0000}_{drawer:00}.png";
    }

    /// <summary>The 1623 characters in store order: background alphabets first, each alphabet's characters in order.</summary>
    public static IReadOnlyList<Character> Characters { get; } = BuildCharacters();

    private static Character[] BuildCharacters()
    {
        var list = new List<Character>();
        foreach (var a in Manifest)
            for (var c = 1; c <= a.Characters; c++)
                list.Add(new Character(list.Count, a, c));
        return [.. list];
    }

    // ---------------------------------------------------------------- splits

    public const int VinyalsTrainCharacters = 1100;
    public const int VinyalsValCharacters = 100;
    public const int VinyalsTestCharacters = CharacterCount - VinyalsTrainCharacters - VinyalsValCharacters; // 423
    public const int LakeValAlphabets = 5;

    /// <summary>
    /// The classes of each split. vinyals: the 1623 characters shuffled with the split seed; the
    /// first 1100 are meta-train, the next 100 validation (together Vinyals et al.'s 1200), the
    /// last 423 meta-test; each character in 4 rotations (0°, 90°, 180°, 270°), each a class of
    /// its own: 4400 / 400 / 1692 classes. lake: the 30 background alphabets shuffled with the
    /// split seed, the first 5 validation and the other 25 meta-train, the 20 evaluation
    /// alphabets meta-test; no rotations (as in Lake et al.).
    /// </summary>
    public static Dictionary<Split, SplitClass[]> Splits(OmniglotSplit split, long splitSeed)
    {
        switch (split)
        {
            case OmniglotSplit.Vinyals:
            {
                var order = Enumerable.Range(0, CharacterCount).ToArray();
                new SplitMix64(SplitMix64.Mix((ulong)splitSeed ^ 0x76696E79616C73UL)).Shuffle<int>(order);
                SplitClass[] Rotated(IEnumerable<int> chars) => [.. chars.SelectMany(c => Enumerable.Range(0, 4).Select(r => new SplitClass(c, r)))];
                return new()
                {
                    [Split.Train] = Rotated(order.Take(VinyalsTrainCharacters)),
                    [Split.Val] = Rotated(order.Skip(VinyalsTrainCharacters).Take(VinyalsValCharacters)),
                    [Split.Test] = Rotated(order.Skip(VinyalsTrainCharacters + VinyalsValCharacters)),
                };
            }
            case OmniglotSplit.Lake:
            {
                var background = Manifest.Where(a => a.Part == Parts[0]).ToArray();
                new SplitMix64(SplitMix64.Mix((ulong)splitSeed ^ 0x6C616B65UL)).Shuffle<Alphabet>(background);
                var val = background.Take(LakeValAlphabets).ToHashSet();
                SplitClass[] Of(Func<Character, bool> keep) => [.. Characters.Where(keep).Select(c => new SplitClass(c.Index, 0))];
                return new()
                {
                    [Split.Train] = Of(c => c.Alphabet.Part == Parts[0] && !val.Contains(c.Alphabet)),
                    [Split.Val] = Of(c => val.Contains(c.Alphabet)),
                    [Split.Test] = Of(c => c.Alphabet.Part == Parts[1]),
                };
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(split), split, null);
        }
    }

    // ---------------------------------------------------------------- loading

    /// <summary>
    /// Loads Omniglot from &lt;root&gt;/omniglot as an episode sampler: from the decoded-image
    /// cache when it is current, else by decoding every image (and writing the cache).
    /// </summary>
    /// <param name="trainWithinAlphabet">Training episodes draw all their classes from one alphabet.</param>
    /// <param name="testWithinAlphabet">Validation and test episodes do (Lake et al.'s within-alphabet protocol).</param>
    public static ImageTaskFamily Open(string datasetDir, OmniglotSplit split, long splitSeed, int imageSize, long seed, DataOptions options,
        bool trainWithinAlphabet = false, bool testWithinAlphabet = false)
    {
        var format = ImageFormat.Omniglot(imageSize);
        var store = LoadStore(datasetDir, format.Size, options);
        var names = Characters.Select(c => c.Folder).ToArray();
        var splits = Splits(split, splitSeed);
        var groups = new Dictionary<Split, int[][]>();
        foreach (var (s, classes) in splits)
            if (s == Split.Train ? trainWithinAlphabet : testWithinAlphabet)
                groups[s] = AlphabetGroups(classes);
        // The training alphabets are its domains (MLDG), whether or not episodes keep within one.
        var train = splits[Split.Train];
        var domains = AlphabetGroups(train).Select(g => (Characters[train[g[0]].Source].Alphabet.Name, g)).ToList();
        return new ImageTaskFamily(MetaRun.Config.Dataset.Omniglot, store, splits, names, format.Scale, format.Offset, seed, options, groups, domains);
    }

    /// <summary>The split's classes (indices into it) grouped by the alphabet of their character, alphabets in manifest order.</summary>
    public static int[][] AlphabetGroups(SplitClass[] classes) =>
        [.. classes.Select((c, i) => (Alphabet: Characters[c.Source].Alphabet, i)).GroupBy(x => x.Alphabet)
            .OrderBy(g => Manifest.ToList().IndexOf(g.Key)).Select(g => g.Select(x => x.i).ToArray())];

    private static Preprocessing Prep(int size) => ImageFormat.Omniglot(size).Prep;

    /// <summary>The decoded store: from the cache when current, else prepared (and cached).</summary>
    public static ImageStore LoadStore(string datasetDir, int size, DataOptions options)
    {
        var sources = Parts.Select(p => OmniglotSource.Open(datasetDir, p)).ToArray();
        try
        {
            var prep = Prep(size);
            var key = $"{Dataset};{prep.Key};" + string.Join(";", sources.Select(s => s.Identity()));
            var classSizes = Enumerable.Repeat(Drawers, CharacterCount).ToArray();
            string? cachePath = null;
            if (options.UseCache)
            {
                cachePath = ImageCache.PathFor(ImageCache.ResolveDir(options), Dataset, size, key);
                var cached = ImageCache.TryLoad(cachePath, key, 1, size, size, classSizes, options.Log);
                if (cached != null) return cached;
            }
            options.Log?.Invoke($"omniglot: decoding {CharacterCount * Drawers} images from {datasetDir} (once; later runs read the cache)");
            using var images = new OmniglotImages(sources);
            var store = ImagePreparation.Prepare(images, classSizes, prep, options, Dataset);
            if (cachePath != null) ImageCache.TrySave(cachePath, key, store, options.Log);
            return store;
        }
        finally
        {
            foreach (var s in sources) s.Dispose();
        }
    }

    /// <summary>Every image path in store order, with the part it belongs to.</summary>
    internal static IEnumerable<(int Part, string Path)> ImagePaths() =>
        Characters.SelectMany(c => Enumerable.Range(1, Drawers).Select(d => (c.Alphabet.Part == Parts[0] ? 0 : 1, c.ImagePath(d))));
}

/// <summary>One part of Omniglot (images_background or images_evaluation) as a zip or an unpacked folder.</summary>
internal sealed class OmniglotSource : IDisposable
{
    private ZipArchive? zip;
    private Dictionary<string, ZipArchiveEntry>? entries;

    private OmniglotSource(string part, string path, bool isZip)
    {
        Part = part;
        Path = path;
        IsZip = isZip;
    }

    public string Part { get; }
    /// <summary>The zip file, or the folder that holds &lt;part&gt;/.</summary>
    public string Path { get; }
    public bool IsZip { get; }

    /// <summary>The part's zip when there is one, else its unpacked folder; a DataException when neither is there.</summary>
    public static OmniglotSource Open(string datasetDir, string part)
    {
        var zipPath = System.IO.Path.Combine(datasetDir, part + ".zip");
        if (File.Exists(zipPath)) return new OmniglotSource(part, zipPath, true);
        var dir = System.IO.Path.Combine(datasetDir, part);
        if (Directory.Exists(dir)) return new OmniglotSource(part, datasetDir, false);
        throw new DataException($"{datasetDir}: neither {part}.zip nor the unpacked folder {part}/ is there (the official Omniglot layout has both parts; run 'metarun data verify omniglot')");
    }

    /// <summary>What the cache key records of this source: the zip's length and content hash, or each file's path, length and mtime.</summary>
    public string Identity()
    {
        if (IsZip)
        {
            byte[] bytes;
            try { bytes = File.ReadAllBytes(Path); }
            catch (IOException e) { throw new DataException($"{Path}: cannot read: {e.Message}", e); }
            return $"{Part}=zip:{bytes.Length}:{XxHash64.Hash(bytes):x16}";
        }
        var sb = new StringBuilder();
        foreach (var (part, rel) in Omniglot.ImagePaths())
        {
            if (Omniglot.Parts[part] != Part) continue;
            var info = new FileInfo(System.IO.Path.Combine(Path, rel));
            if (!info.Exists) throw new DataException($"{info.FullName}: missing Omniglot image (run 'metarun data verify omniglot' for the full list)");
            sb.Append(rel).Append(':').Append(info.Length).Append(':').Append(info.LastWriteTimeUtc.Ticks).Append('\n');
        }
        return $"{Part}=dir:{XxHash64.Hash(sb.ToString()):x16}";
    }

    public string NameOf(string rel) => IsZip ? $"{Path}:{rel}" : System.IO.Path.Combine(Path, rel);

    /// <summary>The entries of the zip by name (opening it on first use); a DataException when it is not a zip.</summary>
    public Dictionary<string, ZipArchiveEntry> Entries()
    {
        if (entries != null) return entries;
        try
        {
            zip = ZipFile.OpenRead(Path);
            entries = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
            foreach (var e in zip.Entries) entries.TryAdd(e.FullName.Replace('\\', '/'), e);
            return entries;
        }
        catch (InvalidDataException e)
        {
            throw new DataException($"{Path}: not a zip archive ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new DataException($"{Path}: cannot read: {e.Message}", e);
        }
    }

    /// <summary>The bytes of one image; a DataException naming it when it is missing or unreadable.</summary>
    public byte[] Read(string rel)
    {
        if (!IsZip)
        {
            var file = System.IO.Path.Combine(Path, rel);
            try { return File.ReadAllBytes(file); }
            catch (FileNotFoundException) { throw new DataException($"{file}: missing Omniglot image"); }
            catch (DirectoryNotFoundException) { throw new DataException($"{file}: missing Omniglot image"); }
            catch (IOException e) { throw new DataException($"{file}: cannot read: {e.Message}", e); }
        }
        if (!Entries().TryGetValue(rel, out var entry)) throw new DataException($"{Path}: has no {rel} (run 'metarun data verify omniglot' for the full list)");
        Stream s;
        try
        {
            s = entry.Open();
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new DataException($"{Path}:{rel}: cannot be extracted ({e.Message})", e);
        }
        // .NET reports a damaged deflate stream as "an unsupported compression method", the same
        // words as for a method it cannot read; only Open reads the method, so a failure after it
        // is damaged data.
        try
        {
            using (s)
            {
                var bytes = new byte[entry.Length];
                s.ReadExactly(bytes);
                return bytes;
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new DataException($"{Path}:{rel}: the compressed data is damaged (the zip is corrupt: copy or download it again; 'metarun data verify omniglot' checks every image)", e);
        }
    }

    public void Dispose() => zip?.Dispose();
}

/// <summary>All 32,460 images in store order, read from the two parts (zip entries one after another, files in parallel).</summary>
internal sealed class OmniglotImages(OmniglotSource[] sources) : IEncodedImages
{
    private readonly (int Part, string Path)[] paths = [.. Omniglot.ImagePaths()];

    public int Count => paths.Length;

    public string NameOf(int index) => sources[paths[index].Part].NameOf(paths[index].Path);

    public void Read(int start, byte[][] into, ParallelOptions parallel)
    {
        // A ZipArchive is not thread-safe: each zip is read by one thread, the two parts side by side.
        var byPart = Enumerable.Range(0, into.Length).GroupBy(i => paths[start + i].Part).ToArray();
        try
        {
            Parallel.ForEach(byPart, parallel, group =>
            {
                var source = sources[group.Key];
                if (source.IsZip)
                    foreach (var i in group) into[i] = source.Read(paths[start + i].Path);
                else
                    Parallel.ForEach(group, parallel, i => into[i] = source.Read(paths[start + i].Path));
            });
        }
        catch (AggregateException e) when (e.Flatten().InnerExceptions.OfType<DataException>().FirstOrDefault() is { } first)
        {
            throw first;
        }
    }

    public void Dispose() { }
}
