using MetaRun.Config;

namespace MetaRun.Data;

/// <summary>The one place that turns a run's data config into its task family.</summary>
public static class TaskFamilies
{
    /// <summary>
    /// The task family of <paramref name="data"/>: sinusoid is built in; omniglot and
    /// miniimagenet are read from &lt;data root&gt;/&lt;dataset&gt; (root: <paramref name="dataRootOverride"/>
    /// (--data-root), else data.root, else $METARUN_DATA_ROOT, else ~/.metarun/datasets) through the
    /// decoded-image cache. Episodes are a pure function of (<paramref name="seed"/>, split, index).
    /// </summary>
    public static ITaskFamily Open(DataConfig data, string? dataRootOverride, long seed) => Open(data, dataRootOverride, seed, DataOptions.Default);

    public static ITaskFamily Open(DataConfig data, string? dataRootOverride, long seed, DataOptions options)
    {
        switch (data.Dataset)
        {
            case Dataset.Sinusoid:
                return new SinusoidTaskFamily(seed);
            case Dataset.Linear:
                return new LinearTaskFamily(seed);
            case Dataset.Quadratic:
                return new QuadraticTaskFamily(seed);
            case Dataset.Navigation2d:
                return new NavigationTaskFamily(seed, data.Navigation, data.ObserveGoal);
            case Dataset.Omniglot:
            {
                var (root, source) = DataRoot.ResolveWithSource(dataRootOverride, data.Root);
                var dir = DataRoot.DatasetDir(root, source, Omniglot.Dataset);
                return Omniglot.Open(dir, data.Split, data.SplitSeed, data.ImageSize, seed, options, data.Train.WithinAlphabet, data.Test.WithinAlphabet);
            }
            case Dataset.MiniImageNet:
            {
                var (root, source) = DataRoot.ResolveWithSource(dataRootOverride, data.Root);
                var dir = DataRoot.DatasetDir(root, source, MiniImageNet.Dataset);
                return MiniImageNet.Open(dir, data.ImageSize, seed, options);
            }
            case Dataset.Folder:
                // data.root is the image folder itself; --data-root names where the benchmarks live, not this.
                return FolderDataset.Open(data, seed, options);
            case Dataset.Features:
                // Like a folder: data.root is the features file or folder itself.
                return FeatureDataset.Open(data, seed, options);
            default:
                throw new ArgumentOutOfRangeException(nameof(data), data.Dataset, null);
        }
    }

    /// <summary>
    /// Episode shapes a data set cannot supply, found from the config alone (before any data is
    /// read): ways beyond a split's classes, shots + queries beyond a class's images. Omniglot's
    /// splits and class sizes are fixed by the release, so they are known here; miniImageNet's
    /// come from its CSVs and are checked when episodes are drawn. <paramref name="located"/>
    /// gives where a key was set (null when it was left at its default).
    /// </summary>
    public static void CheckEpisodes(RunConfig config, Func<string, string?> located, string source)
    {
        var data = config.Data;
        if (data.Dataset != Dataset.Omniglot) return;
        var splits = Omniglot.Splits(data.Split, data.SplitSeed);
        void Check(string section, EpisodeConfig e, params Split[] used)
        {
            var prefix = $"data.{section}.";
            foreach (var split in used)
            {
                var classes = splits[split].Length;
                if (e.Ways > classes)
                    throw new ConfigException($"{located(prefix + "ways") ?? source}: '{prefix}ways' is {e.Ways}, but the omniglot {data.Split.Yaml()} {ImageTaskFamily.Lower(split)} split has {classes} classes");
            }
            if (e.Shots + e.Queries > Omniglot.Drawers)
            {
                var key = located(prefix + "queries") != null || located(prefix + "shots") == null ? "queries" : "shots";
                throw new ConfigException($"{located(prefix + key) ?? source}: '{prefix}{key}': {prefix}shots + {prefix}queries is {e.Shots} + {e.Queries} = {e.Shots + e.Queries}, but an omniglot class has {Omniglot.Drawers} images");
            }
        }
        if (TrainsOnEpisodes(config)) Check("train", data.Train, Split.Train);
        // data.test shapes both the validation and the meta-test episodes.
        Check("test", data.Test, Split.Val, Split.Test);
    }

    /// <summary>
    /// What a command reads of the data set (<see cref="DataOptions.Splits"/>): each of
    /// <paramref name="splits"/> with the classes its episodes need (data.train.ways for train
    /// episodes, one class for the baseline's mini-batches, data.test.ways for val and test).
    /// </summary>
    public static IReadOnlyDictionary<Split, int> Needs(RunConfig config, params Split[] splits) =>
        splits.Distinct().ToDictionary(s => s, s => s != Split.Train ? config.Data.Test.Ways : TrainsOnEpisodes(config) ? config.Data.Train.Ways : 1);

    /// <summary>What training reads: the train split, and val when it validates (eval.interval &gt; 0).</summary>
    public static IReadOnlyDictionary<Split, int> TrainingNeeds(RunConfig config) =>
        config.Eval.Interval > 0 ? Needs(config, Split.Train, Split.Val) : Needs(config, Split.Train);

    /// <summary>The key that sets how many classes a split's episodes take.</summary>
    public static string WaysKey(Split split) => split == Split.Train ? "data.train.ways" : "data.test.ways";

    /// <summary>Whether data.train shapes anything: the baseline trains on its own mini-batches over every training class.</summary>
    private static bool TrainsOnEpisodes(RunConfig config) =>
        Algorithms.AlgorithmRegistry.All.FirstOrDefault(a => a.Name == config.Algorithm.Name)?.Trains != Algorithms.TrainsOn.OwnBatches;

    /// <summary>
    /// The same checks against an opened data set whose splits come from its files (miniImageNet's
    /// CSVs): still before training starts, as config errors naming the key.
    /// </summary>
    public static void CheckEpisodes(RunConfig config, ITaskFamily family, DataOptions? options = null)
    {
        if (family is not ISplitClasses images) return;
        void Check(string section, EpisodeConfig e, params Split[] used)
        {
            var prefix = $"data.{section}.";
            foreach (var split in used.Where(s => options?.Reads(s) ?? true))
            {
                var classes = images.ClassCount(split);
                if (e.Ways > classes)
                    throw new ConfigException($"{config.Where(prefix + "ways")}: '{prefix}ways' is {e.Ways}, but the {images.Name} {ImageTaskFamily.Lower(split)} split has {classes} classes");
                var (name, size) = images.SmallestClass(split);
                if (e.Shots + e.Queries > size)
                {
                    var key = prefix + (config.KeyLocations.ContainsKey(prefix + "queries") || !config.KeyLocations.ContainsKey(prefix + "shots") ? "queries" : "shots");
                    throw new ConfigException($"{config.Where(key)}: '{key}': {prefix}shots + {prefix}queries is {e.Shots} + {e.Queries} = {e.Shots + e.Queries}, but {images.Name} class '{name}' ({ImageTaskFamily.Lower(split)} split) has {size} {images.Unit}");
                }
            }
        }
        if (TrainsOnEpisodes(config)) Check("train", config.Data.Train, Split.Train);
        // Without validation (eval.interval 0) a data set needs no val classes (docs/own-data.md).
        Check("test", config.Data.Test, config.Eval.Interval > 0 || images.ClassCount(Split.Val) > 0 ? [Split.Val, Split.Test] : [Split.Test]);
    }

    /// <summary>The episode shape of a split: data.train for meta-training, data.test for validation and meta-test.</summary>
    public static EpisodeShape ShapeOf(DataConfig data, Split split)
    {
        var e = split == Split.Train ? data.Train : data.Test;
        return new EpisodeShape(e.Ways, e.Shots, e.Queries);
    }
}
