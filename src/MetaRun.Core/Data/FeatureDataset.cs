using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>
/// Examples as vectors (data.dataset: features): embeddings of text, audio, time series or
/// images from any model, read by <see cref="FeatureFiles"/>. data.root is either one file whose
/// classes are split by data.split_ratio (shuffled with data.split_seed, as a folder data set's
/// class folders are), or a folder holding train.EXT, val.EXT and test.EXT (EXT one of csv, npy,
/// safetensors; val and test optional), whose classes are then named train/LABEL, test/LABEL.
/// Within a split classes are in label order (numeric labels as numbers, others ordinally) and
/// examples in file order. See docs/own-data.md.
/// </summary>
public static class FeatureDataset
{
    private static readonly Split[] SplitOrder = [Split.Train, Split.Val, Split.Test];

    /// <summary>One class: its split, its name in messages and its examples (rows of <paramref name="Table"/>, in file order).</summary>
    public sealed record FeatureClass(Split Split, string Name, FeatureTable Table, int[] Rows);

    public static FeatureTaskFamily Open(DataConfig data, long seed, DataOptions options)
    {
        if (string.IsNullOrWhiteSpace(data.Root))
            throw new ConfigException("data.root: the features data set needs data.root, a features file (.csv, .npy, .safetensors) or a folder with train/val/test files");
        var classes = Keep(ReadLayout(DataRoot.Expand(data.Root), data), data, options.Log);
        var dims = classes.Select(c => c.Table).Distinct().ToList();
        if (dims.FirstOrDefault(t => t.Dim != dims[0].Dim) is { } other)
            throw new DataException($"{other.Path}: {other.Dim} features per example, but {dims[0].Path} has {dims[0].Dim}");
        return new FeatureTaskFamily(classes, seed);
    }

    /// <summary>The classes of each split, in store order (train, val, test; label order within a split).</summary>
    public static List<FeatureClass> ReadLayout(string root, DataConfig data)
    {
        var result = new List<FeatureClass>();
        if (Directory.Exists(root))
        {
            if (data.SplitRatio.Count > 0)
                throw new ConfigException($"data.split_ratio: {root} is a folder of split files (train, val, test); remove data.split_ratio, or point data.root at one file to split it by ratio");
            var found = SplitOrder.Select(s => FileOf(root, s)).ToArray();
            if (found[0] == null)
                throw new DataException($"{root}: no train.csv, train.npy or train.safetensors (a features folder holds train.EXT, and val.EXT, test.EXT to validate and evaluate)");
            for (var s = 0; s < 3; s++)
                if (found[s] is { } file)
                {
                    var table = FeatureFiles.Read(file);
                    result.AddRange(Classes(table).Select(c => new FeatureClass(SplitOrder[s], $"{ImageTaskFamily.Lower(SplitOrder[s])}/{c.Name}", table, c.Rows)));
                }
            return result;
        }
        if (!File.Exists(root)) throw new DataException($"{root}: data.root not found (a features file or a folder with train/val/test files)");
        if (data.SplitRatio.Count == 0)
            throw new ConfigException($"data.split_ratio: {root} is one file; set data.split_ratio (like [0.6, 0.2, 0.2]) to split its classes into train, val and test, or give a folder with train/val/test files");
        if (data.SplitRatio.Count != 3 || data.SplitRatio.Any(r => r < 0 || r > 1))
            throw new ConfigException($"data.split_ratio: [{string.Join(", ", data.SplitRatio)}]; expected three fractions between 0 and 1 (train, val, test)");
        var all = FeatureFiles.Read(root);
        var classes = Classes(all);
        // The same shuffle as a folder data set's class folders, so a split depends on data.split_seed alone.
        var order = Enumerable.Range(0, classes.Count).ToArray();
        new SplitMix64(SplitMix64.Mix((ulong)data.SplitSeed ^ 0x666561747572UL)).Shuffle<int>(order);
        var nTrain = (int)Math.Round(data.SplitRatio[0] * classes.Count);
        var nVal = Math.Min(classes.Count - nTrain, (int)Math.Round(data.SplitRatio[1] * classes.Count));
        var split = new Split[classes.Count];
        for (var i = 0; i < order.Length; i++) split[order[i]] = i < nTrain ? Split.Train : i < nTrain + nVal ? Split.Val : Split.Test;
        return [.. classes.Select((c, i) => new FeatureClass(split[i], c.Name, all, c.Rows)).OrderBy(c => c.Split)];
    }

    private static string? FileOf(string root, Split split)
    {
        var present = FeatureFiles.Extensions.Select(e => Path.Combine(root, ImageTaskFamily.Lower(split) + e)).Where(File.Exists).ToArray();
        if (present.Length > 1) throw new DataException($"{root}: both {Path.GetFileName(present[0])} and {Path.GetFileName(present[1])}; keep one file per split");
        return present.FirstOrDefault();
    }

    /// <summary>The table's classes in label order (numbers as numbers when every label is one), rows in file order.</summary>
    private static List<(string Name, int[] Rows)> Classes(FeatureTable table)
    {
        var groups = table.Labels.Select((l, i) => (l, i)).GroupBy(x => x.l, StringComparer.Ordinal).Select(g => (Name: g.Key, Rows: g.Select(x => x.i).ToArray())).ToList();
        var numeric = groups.All(g => decimal.TryParse(g.Name, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _));
        return numeric
            ? [.. groups.OrderBy(g => decimal.Parse(g.Name, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture)).ThenBy(g => g.Name, StringComparer.Ordinal)]
            : [.. groups.OrderBy(g => g.Name, StringComparer.Ordinal)];
    }

    /// <summary>Leaves out (data.skip_small_classes), or stops at, classes with fewer examples than their split's episodes take.</summary>
    private static List<FeatureClass> Keep(List<FeatureClass> classes, DataConfig data, Action<string>? log)
    {
        int Need(Split s) => s == Split.Train ? data.Train.Shots + data.Train.Queries : data.Test.Shots + data.Test.Queries;
        var small = classes.Where(c => c.Rows.Length < Need(c.Split)).ToList();
        if (small.Count == 0) return classes;
        string Describe(FeatureClass c) => $"'{c.Name}' ({c.Rows.Length} examples, {ImageTaskFamily.Lower(c.Split)} episodes need {Need(c.Split)})";
        if (!data.SkipSmallClasses)
            throw new DataException($"{small[0].Table.Path}: class {Describe(small[0])} has too few examples{(small.Count > 1 ? $"; so have {small.Count - 1} more" : "")}; add examples, lower data.train/test shots or queries, or set data.skip_small_classes: true to leave such classes out");
        log?.Invoke($"warning: leaving out {small.Count} class(es) with too few examples (data.skip_small_classes): {string.Join(", ", small.Select(Describe))}");
        return [.. classes.Except(small)];
    }
}
