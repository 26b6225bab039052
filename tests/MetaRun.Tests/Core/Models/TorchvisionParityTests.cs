using System.Diagnostics;
using LibTorch;
using MetaRun.Models;

namespace MetaRun.Tests.Models;

/// <summary>
/// The ready resnet18 and resnet50 specifications against torchvision itself: Debian's
/// python3-torchvision (scripts/setup.sh installs it as root) writes a model's state dict with
/// random weights and batch-norm statistics and its eval-mode outputs; the state dict loads by
/// name through model.init's path and our forward must give the same features and logits.
/// </summary>
public class TorchvisionParityTests
{
    private static string Generate(string name)
    {
        var dir = TestPaths.NewTempDir("torchvision");
        var script = Path.Combine(TestPaths.RepoRoot, "tests", "MetaRun.Tests", "Core", "Models", "fixtures", "torchvision_resnet.py");
        // Debian's python3, where python3-torchvision installs, even when another python3 comes first on PATH.
        var python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var psi = new ProcessStartInfo(python, [script, name, dir]) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0 && err.Result.Contains("No module named 'torch"))
        {
            Skip.IfNot(Environment.UserName == "root", "python3-torchvision is not installed; scripts/setup.sh installs it when run as root");
            Assert.Fail("python3-torchvision is not installed; run scripts/setup.sh (as root) first");
        }
        Assert.True(p.ExitCode == 0, err.Result);
        return dir;
    }

    [SkippableTheory]
    [InlineData("resnet18")]
    [InlineData("resnet50")]
    public void A_torchvision_state_dict_loads_by_name_and_gives_torchvisions_outputs(string name)
    {
        var dir = Generate(name);
        using var scope = Torch.NewScope();
        using var weights = Safetensors.Load(Path.Combine(dir, $"{name}.safetensors"));
        using var io = Safetensors.Load(Path.Combine(dir, $"{name}-io.safetensors"));
        var spec = name == "resnet18" ? ReadySpecs.ResNet18() : ReadySpecs.ResNet50();
        using var g = new Generator(1);
        using var net = new LayerNetwork(spec, [3, 64, 64], 1000, g, Device.Cpu, weights.Tensors, "fixture");
        var report = net.Init!;
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Equal(["fc.weight", "fc.bias"], report.SkippedHead);
        Assert.Equal(weights.Tensors.Count - 2 - weights.Tensors.Keys.Count(k => k.EndsWith("num_batches_tracked")), report.Loaded.Count);
        // The head is never loaded (it is sized by the algorithm); for the logits, copy torchvision's fc in.
        var (hw, hb) = net.Head(net.Parameters);
        using (Torch.NoGrad()) { hw.CopyFrom(weights["fc.weight"]); hb.CopyFrom(weights["fc.bias"]); }
        using var noGrad = Torch.NoGrad();
        var x = io["input"];
        var features = net.Embed(x, net.Parameters);
        var logits = net.Forward(x, net.Parameters);
        Assert.True((features - io["features"]).Abs().Max().Item() < 1e-5, $"features differ by {(features - io["features"]).Abs().Max().Item()}");
        Assert.True((logits - io["logits"]).Abs().Max().Item() < 1e-5, $"logits differ by {(logits - io["logits"]).Abs().Max().Item()}");
    }
}
