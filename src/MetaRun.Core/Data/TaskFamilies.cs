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
            case "sinusoid":
                return new SinusoidTaskFamily(seed);
            case "linear":
                return new LinearTaskFamily(seed);
            case Omniglot.Dataset:
            {
                var (root, source) = DataRoot.ResolveWithSource(dataRootOverride, data.Root);
                var dir = DataRoot.DatasetDir(root, source, Omniglot.Dataset);
                return Omniglot.Open(dir, data.Split, data.SplitSeed, data.ImageSize, seed, options, data.Train.WithinAlphabet, data.Test.WithinAlphabet);
            }
            case MiniImageNet.Dataset:
            {
                var (root, source) = DataRoot.ResolveWithSource(dataRootOverride, data.Root);
                var dir = DataRoot.DatasetDir(root, source, MiniImageNet.Dataset);
                return MiniImageNet.Open(dir, data.ImageSize, seed, options);
            }
            case FolderDataset.Dataset:
                // data.root is the image folder itself; --data-root names where the benchmarks live, not this.
                return FolderDataset.Open(data, seed, options);
            default:
                throw new ConfigException($"data.dataset: unknown data set '{data.Dataset}' (expected sinusoid, linear, omniglot, miniimagenet or folder)");
        }
    }

    /// <summary>The episode shape of a split: data.train for meta-training, data.test for validation and meta-test.</summary>
    public static EpisodeShape ShapeOf(DataConfig data, Split split)
    {
        var e = split == Split.Train ? data.Train : data.Test;
        return new EpisodeShape(e.Ways, e.Shots, e.Queries);
    }
}
