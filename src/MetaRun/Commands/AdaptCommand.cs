using System.CommandLine;
using System.Globalization;
using MetaRun.Algorithms;
using MetaRun.Evaluation;
using MetaRun.Training;

namespace MetaRun.Cli.Commands;

/// <summary>metarun adapt --checkpoint CK --support DIR|FILE [--query DIR|FILE] [--steps N] [--out FILE] [--save-adapted FILE]</summary>
public static class AdaptCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint file (or a run folder: its best checkpoint)", Required = true };
        var support = new Option<string>("--support") { Description = "Folder with one subfolder of labelled images per class (the folder name is the class name); for a features checkpoint, a features file with a label per row", Required = true };
        var query = new Option<string?>("--query") { Description = "Images to classify: a flat folder, or one subfolder per class (then accuracy and a confusion table too); for a features checkpoint, a features file (label '?' where unknown)" };
        var steps = NumberOptions.OptionalInt("--steps", "Inner steps of the adaptation (default: the checkpoint's algorithm.test_inner_steps)", 1, 100_000);
        var output = new Option<string>("--out") { Description = "Predictions CSV; the JSON summary goes beside it (same name, .json)", DefaultValueFactory = _ => "predictions.csv" };
        var save = new Option<string?>("--save-adapted") { Description = "Write the adapted weights (fast weights, prototypes or head) as safetensors, class names in its metadata" };
        var uncertain = NumberOptions.OptionalDouble("--uncertain-above", "Flag a query image uncertain when its predictive entropy exceeds this share of the largest possible, ln(classes)" + $" (default {Adaptation.DefaultUncertainAbove})", 0, 1);
        var command = new Command("adapt", "Adapt a checkpoint to your own labelled images (few per class) and classify new ones (see docs/own-data.md)")
        {
            checkpoint, support, query, steps, output, save, uncertain,
        };
        command.SetAction(r => Run(r.GetValue(checkpoint)!, r.GetValue(support)!, r.GetValue(query), r.GetValue(steps), r.GetValue(output)!, r.GetValue(save), r.GetValue(uncertain) ?? Adaptation.DefaultUncertainAbove));
        return command;
    }

    private static int Run(string checkpoint, string support, string? query, int? steps, string csvPath, string? saveAdapted, double uncertainAbove)
    {
        if (query == null && saveAdapted == null)
            throw new ConfigException("adapt: nothing to do; give --query (images to classify) and/or --save-adapted (where to write the adapted weights)");
        using var interruption = Interruption.During("adapt");
        OutputGuard.Check(
            [.. query != null ? new[] { ("--out", csvPath), ("--out (its JSON)", Path.ChangeExtension(csvPath, ".json")) } : [], .. saveAdapted != null ? new[] { ("--save-adapted", saveAdapted) } : []],
            [("--checkpoint", RunDirectory.ResolveCheckpoint(checkpoint))], [("--support", support), .. query != null ? new[] { ("--query", query) } : []]);
        var r = Adaptation.Run(checkpoint, support, query, steps, saveAdapted, uncertainAbove);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"{r.Algorithm} adapted to {r.Classes.Length} classes ({string.Join(", ", r.Classes.Select((c, i) => $"{c}: {r.Shots[i]}"))} {r.Unit}){(r.Steps is { } s ? $" in {s} steps" : "")}{(ModelBased(r.Algorithm) ? " with no gradient step: the support set is the context of one forward pass" : "")}");
        if (query != null)
        {
            var jsonPath = Path.ChangeExtension(csvPath, ".json");
            if (r.Accuracy is { } a)
            {
                Console.WriteLine($"accuracy {a.ToString("0.0000", inv)} ({r.Predictions.Count(p => p.Truth == p.Predicted)} of {r.Predictions.Count} query {r.Unit})");
                var width = Math.Max(9, r.Classes.Max(c => c.Length));
                Console.WriteLine("true \\ predicted".PadRight(width) + string.Concat(r.Classes.Select(c => " " + c.PadLeft(Math.Max(4, c.Length)))));
                for (var i = 0; i < r.Classes.Length; i++)
                    Console.WriteLine(r.Classes[i].PadRight(width) + string.Concat(r.Confusion![i].Select((v, j) => " " + v.ToString(inv).PadLeft(Math.Max(4, r.Classes[j].Length)))));
            }
            else
            {
                Console.WriteLine($"{r.Predictions.Count} query {r.Unit}: {string.Join(", ", r.Classes.Select(c => $"{c} {r.Predictions.Count(p => p.Predicted == c)}"))}");
            }
            Console.WriteLine($"{r.Predictions.Count(p => p.Uncertain)} of {r.Predictions.Count} query {r.Unit} uncertain (predictive entropy above {r.UncertainAbove.ToString("0.###", inv)} × ln {r.Classes.Length} = {(r.UncertainAbove * Math.Log(r.Classes.Length)).ToString("0.000", inv)} nats)");
            // Printed first, as eval does: an unwritable --out loses no result.
            Adaptation.WriteResults(r, csvPath, jsonPath);
            Console.WriteLine($"written to {Path.GetFullPath(csvPath)} and {Path.GetFullPath(jsonPath)}");
        }
        if (saveAdapted != null) Console.WriteLine($"adapted weights written to {Path.GetFullPath(saveAdapted)}");
        return ExitCodes.Success;
    }

    private static bool ModelBased(string algorithm) => AlgorithmRegistry.Get(algorithm).Learners.Any(typeof(IModelBased).IsAssignableFrom);
}
