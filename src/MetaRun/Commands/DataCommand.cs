using System.CommandLine;
using LibTorch;
using MetaRun.Config;
using MetaRun.Data;

namespace MetaRun.Cli.Commands;

/// <summary>metarun data fetch | verify | show: getting, checking and looking at data sets.</summary>
public static class DataCommand
{
    public static Command Create()
    {
        var command = new Command("data", "Fetch, verify and look at data sets (see docs/data.md)");
        command.Subcommands.Add(FetchCommand());
        command.Subcommands.Add(VerifyCommand());
        command.Subcommands.Add(ShowCommand());
        return command;
    }

    private static Action<string> Log => message => Console.Error.WriteLine($"metarun: {message}");

    // ---------------------------------------------------------------- fetch

    private static Command FetchCommand()
    {
        var dataset = new Argument<string>("dataset") { Description = "The data set to fetch: omniglot" };
        dataset.AcceptOnlyFromAmong(Omniglot.Dataset, MiniImageNet.Dataset);
        var from = new Option<string?>("--from") { Description = "Copy a local Omniglot (a folder with images_background.zip and images_evaluation.zip, or the unpacked folders) instead of downloading; it is checked by content first" };
        var command = new Command("fetch", "Put a data set under <data root>/<dataset>: download the official Omniglot zips (MD5-checked) or copy a local copy (--from)")
        {
            dataset, from,
        };
        command.SetAction(parse => Fetch(parse.GetValue(dataset)!, parse.GetValue(from), parse.GetValue(GlobalOptions.DataRoot), Console.Out));
        return command;
    }

    public static int Fetch(string dataset, string? from, string? dataRoot, TextWriter output)
    {
        var (root, source) = DataRoot.ResolveWithSource(dataRoot, null);
        if (dataset != Omniglot.Dataset)
            throw new DataException($"{dataset} cannot be fetched automatically (its images are licensed from ImageNet); put it under {Path.Combine(root, dataset)} in the layout of docs/data.md and run 'metarun data verify {dataset}'");
        var target = Path.Combine(root, Omniglot.Dataset);
        var options = new DataOptions { Log = Log };
        if (from != null) OmniglotFetch.CopyFrom(from, target, options);
        else OmniglotFetch.Download(target, options);
        var report = DataVerifier.Omniglot(target, options);
        if (!report.Complete)
            throw new DataException($"{target}: the fetched Omniglot is incomplete ({report.Problems[0]})");
        output.WriteLine($"omniglot is ready in {target} (data root from {source})");
        foreach (var line in report.Counts) output.WriteLine($"  {line}");
        return ExitCodes.Success;
    }

    // ---------------------------------------------------------------- verify

    private static Command VerifyCommand()
    {
        var dataset = new Argument<string>("dataset") { Description = "omniglot or miniimagenet" };
        dataset.AcceptOnlyFromAmong(Omniglot.Dataset, MiniImageNet.Dataset);
        var command = new Command("verify", "Check a data set's layout and counts and decode every image; exit 0 only when complete, 3 otherwise")
        {
            dataset,
        };
        command.SetAction(parse => Verify(parse.GetValue(dataset)!, parse.GetValue(GlobalOptions.DataRoot), Console.Out));
        return command;
    }

    public static int Verify(string dataset, string? dataRoot, TextWriter output)
    {
        var (root, source) = DataRoot.ResolveWithSource(dataRoot, null);
        var dir = DataRoot.DatasetDir(root, source, dataset);
        var report = dataset == Omniglot.Dataset ? DataVerifier.Omniglot(dir) : DataVerifier.MiniImageNet(dir);
        foreach (var problem in report.Problems) output.WriteLine(problem);
        output.WriteLine($"{dataset} in {dir}:");
        foreach (var line in report.Counts) output.WriteLine($"  {line}");
        output.WriteLine(report.Complete ? "complete" : $"INCOMPLETE: {report.Problems.Count} problem{(report.Problems.Count == 1 ? "" : "s")} (listed above)");
        return report.Complete ? ExitCodes.Success : ExitCodes.DataProblem;
    }

    // ---------------------------------------------------------------- show

    private static Command ShowCommand()
    {
        var config = new Argument<string>("config") { Description = "The run's YAML config" };
        var outPath = new Option<string>("--out", "-o") { Description = "The PNG to write", Required = true };
        var split = new Option<string>("--split") { Description = "train, val or test", DefaultValueFactory = _ => "train" };
        split.AcceptOnlyFromAmong("train", "val", "test");
        var episode = new Option<long>("--episode") { Description = "Episode index (episodes are a pure function of seed, split and index)", DefaultValueFactory = _ => 0 };
        var set = new Option<string[]>("--set") { Description = "Override a config key: key.path=value (repeatable)", AllowMultipleArgumentsPerToken = false };
        var command = new Command("show", "Write one sampled episode as a PNG grid: a row per class, its support images, a gap, its query images")
        {
            config, outPath, split, episode, set,
        };
        command.SetAction(parse => Show(parse.GetValue(config)!, parse.GetValue(set) ?? [], parse.GetValue(GlobalOptions.DataRoot),
            parse.GetValue(split)!, parse.GetValue(episode), parse.GetValue(outPath)!, Console.Out));
        return command;
    }

    public static int Show(string configPath, IReadOnlyList<string> sets, string? dataRoot, string splitName, long episode, string outPath, TextWriter output,
        DataOptions? options = null)
    {
        var config = ConfigLoader.LoadData(configPath, sets);
        var split = Enum.Parse<Split>(splitName, ignoreCase: true);
        var shape = TaskFamilies.ShapeOf(config.Data, split);
        using var family = TaskFamilies.Open(config.Data, dataRoot, config.Seed, options ?? new DataOptions { Log = Log });
        if (family is not ImageTaskFamily images)
            throw new MetaRunException(ExitCodes.BadUsage, $"{configPath}: data show draws image episodes; {family.Name} has no images");
        using var scope = Torch.NewScope();
        using var batch = images.Sample(split, episode, 1, shape);
        var plan = images.Plan(split, episode, shape);
        var names = plan.Classes.Select(k => images.ClassName(images.Classes(split)[k])).ToList();
        var png = EpisodeGrid.RenderPng(images, batch, shape, names);
        var dir = Path.GetDirectoryName(Path.GetFullPath(outPath));
        if (dir != null) Directory.CreateDirectory(dir);
        File.WriteAllBytes(outPath, png);
        output.WriteLine($"wrote {outPath}: {images.Name} {splitName} episode {episode}, {shape.Ways}-way {shape.Shots}-shot {shape.Queries}-query");
        for (var j = 0; j < plan.Classes.Length; j++)
            output.WriteLine($"  row {j} (label {j}): {names[j]}");
        return ExitCodes.Success;
    }
}
