using System.CommandLine;
using MetaRun.Evaluation;
using MetaRun.Export;
using MetaRun.Training;

namespace MetaRun.Cli.Commands;

/// <summary>metarun export --checkpoint CK [--adapted FILE] --onnx FILE</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint file (or a run folder: its best checkpoint)", Required = true };
        var adapted = new Option<string?>("--adapted") { Description = "Adapted weights from 'metarun adapt --save-adapted': the classifier for your classes (adapted head, fast weights or prototypes)" };
        var onnx = new Option<string>("--onnx") { Description = "The ONNX file to write", Required = true };
        var command = new Command("export", "Write a checkpoint's network (and an adapted classifier) as ONNX, to run outside MetaRun (see docs/export.md)")
        {
            checkpoint, adapted, onnx,
        };
        command.SetAction(r => Run(r.GetValue(checkpoint)!, r.GetValue(adapted), r.GetValue(onnx)!));
        return command;
    }

    private static int Run(string checkpoint, string? adapted, string onnx)
    {
        OutputGuard.Check([("--onnx", onnx)], [("--checkpoint", RunDirectory.ResolveCheckpoint(checkpoint)), .. adapted != null ? new[] { ("--adapted", adapted) } : []]);
        var r = OnnxExport.Run(checkpoint, adapted, onnx);
        var what = r.Output switch
        {
            ExportedOutput.Head => $"logits for {r.Outputs} classes (linear head{(adapted != null ? ", adapted" : "")})",
            ExportedOutput.Prototypes => $"logits for {r.Outputs} classes (prototypes)",
            _ => "embeddings (the body; no classifier)",
        };
        Console.WriteLine($"wrote {r.Path} ({r.Bytes / 1024.0:0} KiB): {r.Metadata["metarun.algorithm"]} {r.Model}, input [batch, {string.Join(", ", r.InputShape)}], {what}");
        Console.WriteLine($"preprocessing: {r.Metadata["metarun.preprocessing"]}");
        if (r.Metadata["metarun.batch_norm"] != "none") Console.WriteLine($"note: {r.Metadata["metarun.batch_norm"]}");
        return ExitCodes.Success;
    }
}
