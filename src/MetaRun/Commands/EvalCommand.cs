using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Training;

namespace MetaRun.Cli.Commands;

/// <summary>metarun eval --checkpoint PATH [--episodes N] [--split test|val] [--set k=v]... [--out FILE]</summary>
public static class EvalCommand
{
    // Evaluation may change the episode shape and the adaptation, never what was trained.
    private static readonly string[] AllowedPrefixes = ["data.test.", "data.root=", "algorithm.inner_lr=", "algorithm.test_inner_steps=", "device=", "threads="];

    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint file (or a run folder: its last checkpoint)", Required = true };
        var episodes = new Option<int>("--episodes") { Description = "Number of test episodes", DefaultValueFactory = _ => 600 };
        var split = new Option<string>("--split") { Description = "Split to evaluate on", DefaultValueFactory = _ => "test" };
        split.AcceptOnlyFromAmong("test", "val");
        var set = new Option<string[]>("--set") { Description = "Override data.test.ways/shots/queries, algorithm.inner_lr or algorithm.test_inner_steps", AllowMultipleArgumentsPerToken = false };
        var output = new Option<string?>("--out") { Description = "Where to write the JSON result (default: eval.json beside the checkpoint)" };
        var command = new Command("eval", "Meta-test a checkpoint: mean accuracy (or MSE) with its 95% confidence interval") { checkpoint, episodes, split, set, output };
        command.SetAction(r => Run(r.GetValue(checkpoint)!, r.GetValue(episodes), r.GetValue(split)!, r.GetValue(set) ?? [], r.GetValue(output), r.GetValue(GlobalOptions.DataRoot)));
        return command;
    }

    private static int Run(string checkpointPath, int episodes, string splitName, string[] sets, string? outPath, string? dataRoot)
    {
        if (episodes < 1) throw new ConfigException("--episodes must be at least 1");
        foreach (var s in sets)
            if (!AllowedPrefixes.Any(p => s.StartsWith(p, StringComparison.Ordinal)))
                throw new ConfigException($"--set {s}: eval may only change {string.Join(", ", AllowedPrefixes.Select(p => p.TrimEnd('=', '.') + (p.EndsWith('.') ? ".*" : "")))}");
        var file = Checkpoint.ResolvePath(checkpointPath);
        using var checkpoint = Checkpoint.Load(file);
        var config = ConfigLoader.Parse(ConfigLoader.ToYaml(checkpoint.Config), $"{file} (embedded config)", sets);
        var split = splitName == "val" ? Split.Val : Split.Test;

        var clock = Stopwatch.StartNew();
        using var experiment = Experiment.Create(config, dataRoot);
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, file);
        var scores = experiment.Evaluate(split, episodes);
        var regression = experiment.Family.IsRegression;
        var summary = Summary.Of(scores.Select(s => regression ? s.Loss : s.Accuracy).ToArray());
        var seconds = clock.Elapsed.TotalSeconds;

        var shape = experiment.TestShape;
        var result = new JsonObject
        {
            ["metric"] = regression ? "mse" : "accuracy",
            ["mean"] = Math.Round(summary.Mean, 6),
            ["ci95"] = Math.Round(summary.Ci95, 6),
            ["episodes"] = episodes,
            ["split"] = splitName,
            ["ways"] = shape.Ways,
            ["shots"] = shape.Shots,
            ["queries"] = shape.Queries,
            ["inner_steps"] = config.Algorithm.EffectiveTestInnerSteps,
            ["inner_lr"] = config.Algorithm.InnerLr,
            ["iteration"] = checkpoint.Iteration,
            ["checkpoint"] = Path.GetFullPath(file),
            ["seconds"] = Math.Round(seconds, 2),
        };
        var dest = outPath ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "eval.json");
        File.WriteAllText(dest, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

        var inv = CultureInfo.InvariantCulture;
        var what = regression ? "MSE" : "accuracy";
        var shapeText = regression ? $"K={shape.Shots}" : $"{shape.Ways}-way {shape.Shots}-shot";
        Console.WriteLine($"{what} {summary.Mean.ToString("0.0000", inv)} ± {summary.Ci95.ToString("0.0000", inv)} (95% CI) over {episodes} {splitName} episodes, {shapeText}, {seconds.ToString("0.0", inv)} s");
        Console.WriteLine($"written to {dest}");
        return ExitCodes.Success;
    }
}
