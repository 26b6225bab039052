using LibTorch;

namespace MetaRun.Data;

/// <summary>The outcome of checking a data set's layout and files: problems by path, and counts.</summary>
public sealed class VerifyReport(string dataset, string dir)
{
    public string Dataset { get; } = dataset;
    public string Dir { get; } = dir;
    /// <summary>One line per missing, unreadable or unexpected thing, naming its path.</summary>
    public List<string> Problems { get; } = [];
    /// <summary>Counts found, as "what: found / expected" lines.</summary>
    public List<string> Counts { get; } = [];
    public bool Complete => Problems.Count == 0;
}

/// <summary>Checks that a data set is complete: every expected file present and decodable.</summary>
public static class DataVerifier
{
    /// <summary>
    /// Omniglot: both parts (zip or folder), 50 alphabets, 1623 characters, 20 images each, every
    /// image a 105×105 PNG that decodes.
    /// </summary>
    public static VerifyReport Omniglot(string datasetDir, DataOptions? options = null)
    {
        options ??= DataOptions.Default;
        var report = new VerifyReport(Data.Omniglot.Dataset, datasetDir);
        if (!Directory.Exists(datasetDir))
        {
            report.Problems.Add($"{datasetDir}: folder not found");
            return report;
        }
        var paths = Data.Omniglot.ImagePaths().ToArray();
        var good = new bool[paths.Length];
        for (var p = 0; p < Data.Omniglot.Parts.Length; p++)
        {
            var part = Data.Omniglot.Parts[p];
            OmniglotSource source;
            try { source = OmniglotSource.Open(datasetDir, part); }
            catch (DataException e) { report.Problems.Add(e.Message); continue; }
            using (source)
            {
                var mine = Enumerable.Range(0, paths.Length).Where(i => paths[i].Part == p).ToArray();
                var bytes = new byte[mine.Length][];
                if (source.IsZip)
                {
                    Dictionary<string, System.IO.Compression.ZipArchiveEntry> entries;
                    try { entries = source.Entries(); }
                    catch (DataException e) { report.Problems.Add(e.Message); continue; }
                    for (var j = 0; j < mine.Length; j++)
                    {
                        var rel = paths[mine[j]].Path;
                        if (!entries.ContainsKey(rel)) { report.Problems.Add($"missing: {source.NameOf(rel)}"); continue; }
                        try { bytes[j] = source.Read(rel); }
                        catch (DataException e) { report.Problems.Add($"unreadable: {e.Message}"); }
                    }
                }
                else
                {
                    var problems = new string?[mine.Length];
                    Parallel.For(0, mine.Length, options.Parallel, j =>
                    {
                        var rel = paths[mine[j]].Path;
                        var file = source.NameOf(rel);
                        if (!File.Exists(file)) { problems[j] = $"missing: {file}"; return; }
                        try { bytes[j] = File.ReadAllBytes(file); }
                        catch (IOException e) { problems[j] = $"unreadable: {file}: {e.Message}"; }
                    });
                    report.Problems.AddRange(problems.OfType<string>());
                }
                var decodeProblems = new string?[mine.Length];
                Parallel.For(0, mine.Length, options.Parallel, j =>
                {
                    if (bytes[j] == null) return;
                    var name = source.NameOf(paths[mine[j]].Path);
                    try
                    {
                        using var t = Image.Decode(bytes[j], 1);
                        if (t.Size(1) != Data.Omniglot.SourceImageSize || t.Size(2) != Data.Omniglot.SourceImageSize)
                            decodeProblems[j] = $"unexpected size: {name} is {t.Size(2)}×{t.Size(1)}, expected 105×105";
                        else good[mine[j]] = true;
                    }
                    catch (TorchException e)
                    {
                        decodeProblems[j] = $"unreadable: {name}: {e.Message}";
                    }
                });
                report.Problems.AddRange(decodeProblems.OfType<string>());
            }
        }
        var characters = Data.Omniglot.Characters;
        var completeChars = characters.Count(c => Enumerable.Range(0, Data.Omniglot.Drawers).All(d => good[c.Index * Data.Omniglot.Drawers + d]));
        var alphabets = Data.Omniglot.Manifest.Count(a => characters.Any(c => c.Alphabet == a && good[c.Index * Data.Omniglot.Drawers]));
        report.Counts.Add($"alphabets with images: {alphabets} / {Data.Omniglot.AlphabetCount}");
        report.Counts.Add($"complete characters (20 images each): {completeChars} / {Data.Omniglot.CharacterCount}");
        report.Counts.Add($"images that decode: {good.Count(g => g)} / {paths.Length}");
        return report;
    }

    /// <summary>
    /// miniImageNet: images/, the three CSVs with their header, every row's image present and a
    /// decodable JPEG/PNG, and Ravi and Larochelle's counts (64 / 16 / 20 classes × 600 images, no class in two splits).
    /// </summary>
    public static VerifyReport MiniImageNet(string datasetDir, DataOptions? options = null)
    {
        options ??= DataOptions.Default;
        var report = new VerifyReport(Data.MiniImageNet.Dataset, datasetDir);
        if (!Directory.Exists(datasetDir))
        {
            report.Problems.Add($"{datasetDir}: folder not found");
            return report;
        }
        List<MiniImageNet.ClassList> classes;
        try { classes = Data.MiniImageNet.ReadCsvs(datasetDir, checkImages: false); }
        catch (DataException e)
        {
            report.Problems.Add(e.Message);
            return report;
        }
        var images = Path.Combine(datasetDir, "images");
        var rows = classes.SelectMany(c => c.Images.Select(i => (c.Split, i.File, i.Line))).ToArray();
        var problems = new string?[rows.Length];
        var good = 0;
        Parallel.For(0, rows.Length, options.Parallel, j =>
        {
            var (split, file, line) = rows[j];
            var path = Path.Combine(images, file);
            var at = $"{Data.MiniImageNet.CsvNames[split]}:{line}";
            if (!File.Exists(path)) { problems[j] = $"missing: {path} ({at})"; return; }
            try
            {
                using var t = Image.Decode(File.ReadAllBytes(path), 3);
                Interlocked.Increment(ref good);
            }
            catch (Exception e) when (e is TorchException or IOException)
            {
                problems[j] = $"unreadable: {path} ({at}): {e.Message}";
            }
        });
        report.Problems.AddRange(problems.OfType<string>());
        foreach (var split in Data.MiniImageNet.SplitOrder)
        {
            var mine = classes.Where(c => c.Split == split).ToArray();
            var want = Data.MiniImageNet.RaviClassCounts[split];
            var csv = Data.MiniImageNet.CsvNames[split];
            report.Counts.Add($"{csv}: {mine.Length} / {want} classes, {mine.Sum(c => c.Images.Count)} / {want * Data.MiniImageNet.ClassImages} images");
            if (mine.Length != want) report.Problems.Add($"{Path.Combine(datasetDir, csv)}: {mine.Length} classes, expected {want}");
            foreach (var c in mine.Where(c => c.Images.Count != Data.MiniImageNet.ClassImages))
                report.Problems.Add($"{Path.Combine(datasetDir, csv)}: class {c.Label} has {c.Images.Count} images, expected {Data.MiniImageNet.ClassImages}");
        }
        foreach (var shared in classes.GroupBy(c => c.Label).Where(g => g.Count() > 1))
            report.Problems.Add($"class {shared.Key} is in more than one split: {string.Join(", ", shared.Select(c => Data.MiniImageNet.CsvNames[c.Split]))}");
        report.Counts.Add($"images that decode: {good} / {rows.Length}");
        return report;
    }
}
