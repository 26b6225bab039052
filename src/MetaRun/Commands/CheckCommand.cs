using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LibTorch;

namespace MetaRun.Cli.Commands;

/// <summary>metarun check ops: maintenance checks of the installation (see docs/gpu.md).</summary>
public static class CheckCommand
{
    public static Command Create()
    {
        var command = new Command("check", "Check this installation: the libtorch binding's ops on a device (docs/gpu.md)");
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N (default: cuda where a GPU is visible, else cpu)", DefaultValueFactory = _ => Torch.CudaAvailable ? "cuda" : "cpu" };
        var json = new Option<string?>("--json") { Description = "Also write every op's result to this JSON file" };
        var ops = new Command("ops",
            "Every binding op's forward values and gradients on the device, in float32 (and float64 on a GPU), against float64 on the CPU, " +
            "whose gradients are first checked against finite differences; exit 0 only when all agree")
        {
            device, json,
        };
        ops.SetAction(parse => Ops(parse.GetValue(device)!, parse.GetValue(json), Console.Out));
        command.Subcommands.Add(ops);
        return command;
    }

    public static int Ops(string deviceName, string? jsonPath, TextWriter output)
    {
        Device device;
        try { device = Device.Parse(deviceName); }
        catch (ArgumentException e) { throw new MetaRunException(ExitCodes.BadUsage, $"--device: {e.Message}"); }
        if (device.Type == DeviceType.Cuda && (!Torch.CudaAvailable || device.Index >= Torch.CudaDeviceCount))
            throw new MetaRunException(ExitCodes.BadUsage, $"--device {device}: {Torch.CudaUnavailableReason ?? $"this machine has {Torch.CudaDeviceCount} GPU(s)"}");

        var started = DateTime.UtcNow;
        var results = OpCheck.Run(device);
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        var failed = results.Where(r => !r.Passed).ToList();
        foreach (var r in failed) output.WriteLine($"FAIL {r.Name}: {r.Failure}");
        var worstForward = results.Max(r => r.ForwardError);
        var worstGradient = results.Max(r => r.GradientError);
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine(string.Format(inv, "check ops on {0} (libtorch {1}): {2} of {3} ops agree with float64 on the CPU; worst error forward {4:G3}, gradient {5:G3}; {6:F1} s",
            device, Torch.LibTorchVersion, results.Count - failed.Count, results.Count, worstForward, worstGradient, seconds));

        if (jsonPath != null)
        {
            var list = new JsonArray();
            foreach (var r in results)
                list.Add(new JsonObject
                {
                    ["op"] = r.Name, ["passed"] = r.Passed, ["forward_error"] = r.ForwardError, ["gradient_error"] = r.GradientError, ["failure"] = r.Failure,
                });
            var o = new JsonObject
            {
                ["device"] = device.ToString(), ["libtorch"] = Torch.LibTorchVersion, ["ops"] = results.Count, ["failed"] = failed.Count,
                ["worst_forward_error"] = worstForward, ["worst_gradient_error"] = worstGradient, ["seconds"] = Math.Round(seconds, 2), ["results"] = list,
            };
            File.WriteAllText(jsonPath, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        }
        return failed.Count == 0 ? ExitCodes.Success : ExitCodes.Failure;
    }
}
