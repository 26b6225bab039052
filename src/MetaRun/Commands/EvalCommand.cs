using System.CommandLine;
using System.Globalization;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Evaluation;
using MetaRun.Training;

namespace MetaRun.Cli.Commands;

/// <summary>metarun eval --checkpoint PATH [--episodes N] [--split test|val] [--set k=v]... [--out FILE]</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var run = new Argument<string?>("run") { Description = "A run folder: scores its best checkpoint (its last where it never validated)", Arity = ArgumentArity.ZeroOrOne };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint file (or a run folder: its best checkpoint)" };
        var episodes = NumberOptions.Int("--episodes", "Number of test episodes", 1, 1_000_000, 600); // eval.episodes' range
        var split = new Option<string>("--split") { Description = "Split to evaluate on", DefaultValueFactory = _ => "test" };
        split.AcceptOnlyFromAmong("test", "val");
        var set = new Option<string[]>("--set") { Description = $"Override one of {string.Join(", ", Evaluator.ChangeableKeys)}", AllowMultipleArgumentsPerToken = false };
        var output = new Option<string?>("--out") { Description = "Where to write the JSON result (default: eval.json beside the checkpoint)" };
        var attack = new Option<string?>("--attack") { Description = "Also score each episode's query set perturbed against the adapted model: fgsm or pgd (L∞; see docs/robustness.md)" };
        attack.AcceptOnlyFromAmong("fgsm", "pgd");
        var epsilon = NumberOptions.OptionalDouble("--epsilon", "The attack's L∞ size in pixel units: a fraction of the 0–255 range (e.g. 0.1)", 0, 1);
        var steps = NumberOptions.OptionalInt("--steps", $"PGD steps (default {Attack.DefaultPgdSteps}; step size 2.5 ε / steps)", 1, 100_000);
        var baseline = new Option<string[]>("--baseline") { Description = "Meta-RL: another run (pretrained, oracle) evaluated on the same goals, its curve beside the run's", AllowMultipleArgumentsPerToken = false };
        var ood = new Option<bool>("--ood") { Description = "Also score queries of classes outside each episode's support set beside in-episode ones: the AUROC of predictive entropy and of top probability at telling them apart" };
        var innerSteps = new Option<string?>("--inner-steps") { Description = "Score after each of these inner step counts (0..10, or 0,1,5,10) instead: the curve goes into the run's evaluation store and report; for regression also the fits figure (figures/fits.json)" };
        var command = new Command("eval", "Meta-test a checkpoint: mean accuracy (or MSE) with its 95% confidence interval and, for classification, its calibration (NLL, ECE, Brier); for a meta-RL run, the return after 0-3 adaptation steps") { run, checkpoint, episodes, split, set, output, attack, epsilon, steps, baseline, ood, innerSteps, Nproc.Option, Nproc.Oversubscribe };
        command.SetAction(r => Nproc.Requested(r) is { } n
            ? PolicyEvaluation.Applies(CheckpointFrom(r.GetValue(run), r.GetValue(checkpoint))) ? throw new ConfigException(PolicyInOneProcess) : Nproc.Launch(r, n, new RunConfig())
            : PolicyEvaluation.Applies(CheckpointFrom(r.GetValue(run), r.GetValue(checkpoint)))
            ? RunPolicy(CheckpointFrom(r.GetValue(run), r.GetValue(checkpoint)), r.GetValue(baseline) ?? [], r.GetResult(episodes) is { Implicit: false } ? r.GetValue(episodes) : 100, r.GetValue(output), r.GetValue(GlobalOptions.DataRoot),
                r.GetValue(attack) != null || (r.GetValue(set) ?? []).Length > 0 || r.GetValue(split) != "test")
            : (r.GetValue(baseline) ?? []).Length > 0 ? throw new ConfigException("--baseline is for meta-RL runs (data.dataset navigation2d)")
            : r.GetValue(innerSteps) is { } curve
            ? StepCurve(CheckpointFrom(r.GetValue(run), r.GetValue(checkpoint)), curve, r.GetValue(episodes), r.GetValue(split)!, r.GetValue(set) ?? [], r.GetValue(GlobalOptions.DataRoot),
                r.GetValue(attack) != null || r.GetValue(steps) != null || r.GetValue(output) != null || r.GetValue(ood))
            : Run(CheckpointFrom(r.GetValue(run), r.GetValue(checkpoint)), r.GetValue(episodes), r.GetValue(split)!, r.GetValue(set) ?? [], r.GetValue(output), r.GetValue(GlobalOptions.DataRoot),
                AttackFrom(r.GetValue(attack), r.GetValue(epsilon), r.GetValue(steps)), r.GetValue(ood)));
        return command;
    }

    private const string PolicyInOneProcess = "eval of a meta-RL run does not share its goals out among processes; run it in one process (drop --nproc)";

    private static string CheckpointFrom(string? run, string? checkpoint) => (run, checkpoint) switch
    {
        (null, null) => throw new ConfigException("eval needs a run folder (metarun eval RUN) or --checkpoint FILE"),
        ({ }, { }) => throw new ConfigException($"eval: give the run folder ({run}) or --checkpoint ({checkpoint}), not both"),
        _ => run ?? checkpoint!,
    };

    private static Attack? AttackFrom(string? kind, double? epsilon, int? steps) => kind == null
        ? (epsilon ?? (double?)steps) == null ? null : throw new ConfigException("--epsilon and --steps belong to an attack: add --attack fgsm or --attack pgd")
        : Attack.Parse(kind, epsilon ?? throw new ConfigException($"--attack {kind}: give its size with --epsilon E (pixel units, e.g. 0.1)"), steps);

    private static int StepCurve(string checkpointPath, string stepsText, int episodes, string splitName, string[] sets, string? dataRoot, bool unsupported)
    {
        if (unsupported) throw new ConfigException("--inner-steps writes its curve into the run's evaluation store: leave out --attack, --ood and --out");
        using var interruption = Interruption.During("eval");
        var steps = AdaptationCurve.ParseSteps(stepsText);
        var say = (string m) => Console.Error.WriteLine($"metarun: {m}");
        var results = AdaptationCurve.Run(checkpointPath, splitName == "val" ? Split.Val : Split.Test, episodes, steps, sets, dataRoot, say);
        var inv = CultureInfo.InvariantCulture;
        var first = results[0];
        Console.WriteLine($"checkpoint: {first.Checkpoint} (iteration {first.Iteration}), {first.Summary.Count} {first.Split} episodes, inner rate {first.InnerLr.ToString(inv)}");
        Console.WriteLine($"{"steps",5}  {first.Metric.Name,10}  ±95% CI");
        foreach (var r in results)
        {
            Console.WriteLine($"{r.InnerSteps,5}  {r.Summary.Mean.ToString("0.0000", inv),10}  {r.Summary.Ci95.ToString("0.0000", inv)}");
            EvaluationStore.TrySave(r, say);
        }
        var store = EvaluationStore.FolderFor(first.Checkpoint);
        Console.WriteLine($"kept in {store}");
        if (AdaptationCurve.WriteFits(Path.GetDirectoryName(store)!, checkpointPath, steps, sets, dataRoot, say) is { } fits)
            Console.WriteLine($"fits figure written to {fits}");
        return results.All(r => r.Finite) ? ExitCodes.Success : ExitCodes.Failure;
    }

    /// <summary>A meta-RL run: returns after 0-3 adaptation steps on held-out goals, its baselines beside it, the table and figures in the run folder (or --out DIR).</summary>
    private static int RunPolicy(string checkpointPath, string[] baselines, int goals, string? outPath, string? dataRoot, bool unsupported)
    {
        if (unsupported) throw new ConfigException("eval of a meta-RL run takes --episodes (held-out goals), --baseline RUN and --out FILE (the figures go beside it); --attack, --set and --split val are for labelled episodes");
        // Each rank would score every goal and write the same files: its goals are not shared out.
        if (MetaRun.Distributed.Launch.FromEnvironment() is { WorldSize: > 1 })
            throw new ConfigException(PolicyInOneProcess);
        using var interruption = Interruption.During("eval");
        var r = PolicyEvaluation.Run(checkpointPath, baselines, goals, dataRoot, outPath, m => Console.Error.WriteLine($"metarun: {m}"));
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"average return on {r.Goals} held-out goals (mean ± 95% CI), {r.Trajectories} trajectories per step, step sizes {r.FirstLr.ToString(inv)} then {r.LaterLr.ToString(inv)}, iteration {r.Iteration}, {r.Seconds.ToString("0.0", inv)} s");
        var width = Math.Max(8, r.Curves.Max(c => c.Label.Length));
        Console.WriteLine($"{"policy".PadRight(width)}  " + string.Join("  ", Enumerable.Range(0, r.Curves[0].Steps.Length).Select(s => $"{s} step(s)".PadLeft(17))));
        foreach (var c in r.Curves)
            Console.WriteLine($"{c.Label.PadRight(width)}  " + string.Join("  ", c.Steps.Select(s => $"{s.Mean.ToString("0.00", inv)} ± {s.Ci95.ToString("0.00", inv)}".PadLeft(17))));
        Console.WriteLine($"written to {r.Json}, {string.Join(", ", r.Figures)}");
        return ExitCodes.Success;
    }

    private static int Run(string checkpointPath, int episodes, string splitName, string[] sets, string? outPath, string? dataRoot, Attack? attack, bool ood)
    {
        if (ood && attack != null) throw new ConfigException("--ood and --attack: give one of them; each scores its own query sets");
        using var interruption = Interruption.During("eval");
        if (outPath != null) OutputGuard.Check([("--out", outPath)], [("--checkpoint", RunDirectory.ResolveCheckpoint(checkpointPath))]);
        var r = Evaluator.Run(checkpointPath, splitName == "val" ? Split.Val : Split.Test, episodes, sets, dataRoot, m => Console.Error.WriteLine($"metarun: {m}"), attack, EpisodeProgress.OnStderr(), ood);
        if (!r.Reporter) return ExitCodes.Success;
        var inv = CultureInfo.InvariantCulture;
        var what = r.Regression ? "MSE" : "accuracy";
        Console.WriteLine($"checkpoint: {r.Checkpoint} (iteration {r.Iteration})");
        Console.WriteLine($"{what} {r.Summary.Mean.ToString("0.0000", inv)} ± {r.Summary.Ci95.ToString("0.0000", inv)} (95% CI) over {r.Summary.Count} {r.Split} episodes, {r.Episodes}, {r.Seconds.ToString("0.0", inv)} s");
        if (r.Attacked is { } a)
            Console.WriteLine($"{what} {a.Mean.ToString("0.0000", inv)} ± {a.Ci95.ToString("0.0000", inv)} (95% CI) under {r.Attack} on the query sets, same episodes");
        if (r.Predictive is { } p)
            Console.WriteLine($"gaussian nll {p.Nll.Mean.ToString("0.0000", inv)} ± {p.Nll.Ci95.ToString("0.0000", inv)}, 90% interval coverage {p.Coverage90.Mean.ToString("0.0000", inv)} ± {p.Coverage90.Ci95.ToString("0.0000", inv)} (95% CI), same episodes");
        if (r.Calibration is { } c)
            Console.WriteLine($"calibration: NLL {c.Nll.Mean.ToString("0.0000", inv)} ± {c.Nll.Ci95.ToString("0.0000", inv)}, ECE {c.Ece.ToString("0.0000", inv)} ({Calibration.Bins} bins, pooled; per episode {c.EpisodeEce.Mean.ToString("0.0000", inv)} ± {c.EpisodeEce.Ci95.ToString("0.0000", inv)}), Brier {c.Brier.Mean.ToString("0.0000", inv)} ± {c.Brier.Ci95.ToString("0.0000", inv)}");
        if (r.Ood is { } o)
            Console.WriteLine($"out-of-episode queries: AUROC {o.AurocEntropy.ToString("0.0000", inv)} by predictive entropy, {o.AurocMaxProbability.ToString("0.0000", inv)} by top probability ({o.OutQueries} out-of-episode beside {o.InQueries} in-episode queries, {o.InAccuracy.Count} {2 * r.Shape.Ways}-way episodes; in-episode accuracy {o.InAccuracy.Mean.ToString("0.0000", inv)})");
        if (r.Intervals is { } iv)
            Console.WriteLine($"predictive intervals: Gaussian NLL {iv.GaussianNll.Mean.ToString("0.0000", inv)} ± {iv.GaussianNll.Ci95.ToString("0.0000", inv)}, 90% interval coverage {iv.Coverage90.Mean.ToString("0.0000", inv)} ± {iv.Coverage90.Ci95.ToString("0.0000", inv)}");
        if (r.NonFiniteReason is { } why) Console.Error.WriteLine($"metarun: {why}");
        Console.WriteLine($"written to {Evaluator.Write(r, outPath, m => Console.Error.WriteLine($"metarun: {m}"))}");
        if (splitName == "test" && attack == null && !ood
            && OptimizerCurves.Write(Path.GetDirectoryName(EvaluationStore.FolderFor(r.Checkpoint))!, checkpointPath, episodes, sets, dataRoot, m => Console.Error.WriteLine($"metarun: {m}")) is { } oc)
        {
            Console.WriteLine($"query loss over {oc.Steps} optimisation steps on {oc.TestTasks} test tasks (mean ± 95% CI; baselines' rates tuned on {oc.ValTasks} validation tasks), {oc.Seconds.ToString("0.0", inv)} s:");
            var marks = new[] { 0, 1, oc.Steps / 4, oc.Steps / 2, oc.Steps }.Distinct().Order().ToArray();
            Console.WriteLine($"{"optimizer",-24}" + string.Join("", marks.Select(k => $"{"step " + k,20}")));
            foreach (var curve in oc.Curves)
                Console.WriteLine($"{(double.IsNaN(curve.Rate) ? curve.Label : $"{curve.Label} ({curve.Rate.ToString(inv)})"),-24}" + string.Join("", marks.Select(k => $"{curve.Steps[k].Mean.ToString("0.0000", inv) + " ± " + curve.Steps[k].Ci95.ToString("0.0000", inv),20}")));
            Console.WriteLine($"curves written to {oc.Json}, {oc.Csv}, {oc.Png}");
        }
        return r.Finite ? ExitCodes.Success : ExitCodes.Failure;
    }
}
