using LibTorch;

namespace MetaRun.Tests.Cli.Commands;

/// <summary>metarun check ops, as gpu-check.sh runs it on a GPU, here on the CPU; and its refusals.</summary>
[Collection(ProcessWideCollection.Name)]
public class CheckCommandTests
{
    [Fact]
    public void CheckOpsOnTheCpuPassesAndWritesEveryOp()
    {
        var json = Path.Combine(TestPaths.NewTempDir("check"), "ops.json");
        var (code, output, err) = CliRunner.Run("check", "ops", "--device", "cpu", "--json", json);
        Assert.True(code == 0, output + err);
        Assert.Contains($"{OpCatalog.All.Count} of {OpCatalog.All.Count} ops agree", output);
        var doc = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal(0, doc["failed"]!.GetValue<int>());
        Assert.Equal(OpCatalog.All.Count, doc["results"]!.AsArray().Count);
    }

    [Fact]
    public void CudaIsCheckedWhereThereIsOneAndRefusedWithTheReasonWhereNot()
    {
        var (code, output, err) = CliRunner.Run("check", "ops", "--device", "cuda");
        if (Torch.CudaAvailable)
        {
            Assert.True(code == 0, output + err);
            return;
        }
        Assert.Equal(2, code);
        Assert.Contains(Torch.CudaBuilt ? "sees no GPU" : "CPU-only", err);
        Assert.DoesNotContain("   at ", err);

        // train says the same, before it writes anything.
        var run = Path.Combine(TestPaths.NewTempDir("cuda"), "run");
        var (trainCode, _, trainErr) = CliRunner.Run("train", Path.Combine(TestPaths.Configs, "sinusoid", "maml.yaml"), "--set", "device=cuda", "--out", run);
        Assert.Equal(2, trainCode);
        Assert.Contains(Torch.CudaBuilt ? "sees no GPU" : "is CPU-only", trainErr);
    }

    [Fact]
    public void AnUnknownDeviceIsBadUsage()
    {
        var (code, _, err) = CliRunner.Run("check", "ops", "--device", "tpu");
        Assert.Equal(2, code);
        Assert.Contains("unknown device 'tpu'", err);
    }

    [Fact]
    public void WithoutADeviceItChecksTheGpuWhereOneIsVisibleElseTheCpu()
    {
        var (code, output, err) = CliRunner.Run("check", "ops");
        Assert.True(code == 0, output + err);
        Assert.Contains(Torch.CudaAvailable ? "cuda" : "cpu", output);
    }
}
