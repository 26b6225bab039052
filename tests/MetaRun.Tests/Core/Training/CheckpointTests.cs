using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using MetaRun.Tests.Cli;

namespace MetaRun.Tests.Training;

/// <summary>Checkpoint metadata and tensors are validated, never trusted; non-finite results are reported, not saved.</summary>
[Collection(ProcessWideCollection.Name)]
public class CheckpointTests
{
    internal const string Sinusoid = """
        name: t
        data:
          dataset: sinusoid
          train: {shots: 5, queries: 5}
          test: {shots: 5, queries: 5}
        algorithm:
          name: maml
          meta_batch_size: 2
          iterations: 4
        eval:
          interval: 2
          episodes: 4
        checkpoint:
          interval: 2
        """;

    /// <summary>A real 4-iteration sinusoid run (a fraction of a second): its folder and config.</summary>
    internal static (string Run, string Config) TrainedRun()
    {
        var dir = TestPaths.NewTempDir("ckpt");
        var config = Path.Combine(dir, "c.yaml");
        File.WriteAllText(config, Sinusoid);
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", config, "--out", run);
        Assert.True(code == 0, err);
        return (run, config);
    }

    /// <summary>Rewrites a safetensors header in place (the data is kept byte for byte).</summary>
    internal static void EditHeader(string path, Action<JsonObject> edit)
    {
        var bytes = File.ReadAllBytes(path);
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, n))!.AsObject();
        edit(header);
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8;
        var result = new byte[8 + padded + bytes.Length - 8 - n];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)padded);
        json.CopyTo(result, 8);
        result.AsSpan(8 + json.Length, padded - json.Length).Fill((byte)' ');
        bytes.AsSpan(8 + n).CopyTo(result.AsSpan(8 + padded));
        File.WriteAllBytes(path, result);
    }

    private static void AssertRefused(int code, string err, string path, string field)
    {
        Assert.True(code == 4, $"exit {code}: {err}");
        Assert.Contains(path, err);
        Assert.Contains(field, err);
        Assert.DoesNotContain("   at ", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Theory]
    [InlineData("iteration", "-4")]
    [InlineData("iteration", "0")]
    [InlineData("iteration", "5")]
    [InlineData("iteration", "four")]
    [InlineData("iteration", "99999999999999999999999")]
    [InlineData("iteration", " 4")]
    [InlineData("episode_counter", "-8")]
    [InlineData("episode_counter", "9")]
    [InlineData("episode_counter", "1e3")]
    [InlineData("val_loss", "NaN")]
    [InlineData("val_loss", "-1")]
    [InlineData("val_loss", "1e999")]
    [InlineData("val_accuracy", "1.5")]
    [InlineData("val_accuracy", "x")]
    [InlineData("config_hash", "not-a-hash")]
    public void ABadMetadataFieldExitsFourNamingPathAndField(string field, string value)
    {
        var (run, _) = TrainedRun();
        var best = Path.Combine(run, "checkpoints", "best.safetensors");
        EditHeader(best, h => h["__metadata__"]![field] = value);
        var (code, _, err) = CliRunner.Run("eval", "--checkpoint", best, "--episodes", "2");
        AssertRefused(code, err, best, $"'{field}'");
    }

    [Fact]
    public void ANegativeIterationIsRefusedOnResumeBeforeTouchingTheRun()
    {
        var (run, config) = TrainedRun();
        var last = Path.Combine(run, "checkpoints", "last.safetensors");
        EditHeader(last, h =>
        {
            h["__metadata__"]!["iteration"] = "-4";
            h["__metadata__"]!["episode_counter"] = "-8";
        });
        var files = new[] { "metrics.csv", "metrics.jsonl", "config.yaml", "checkpoints/best.safetensors", "checkpoints/last.safetensors" }
            .ToDictionary(f => f, f => File.ReadAllBytes(Path.Combine(run, f)));
        var (code, _, err) = CliRunner.Run("train", config, "--resume", run, "--set", "algorithm.iterations=6");
        AssertRefused(code, err, last, "'iteration'");
        foreach (var (f, bytes) in files) Assert.True(bytes.SequenceEqual(File.ReadAllBytes(Path.Combine(run, f))), $"{f} was changed");
    }

    [Theory]
    [InlineData("param.", "I32")]
    [InlineData("optim.exp_avg.", "I32")]
    [InlineData("param.", "F64")]
    public void ARelabelledDtypeExitsFour(string prefix, string dtype)
    {
        var (run, config) = TrainedRun();
        var last = Path.Combine(run, "checkpoints", "last.safetensors");
        string? name = null;
        EditHeader(last, h =>
        {
            static long Numel(JsonNode e) => e["shape"]!.AsArray().Aggregate(1L, (a, d) => a * d!.GetValue<long>());
            name = h.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal) && Numel(kv.Value!) % 2 == 0).Select(kv => kv.Key).First();
            var entry = h[name]!.AsObject();
            // F64: the same bytes read as half as many elements (refused by its shape or its dtype).
            if (dtype == "F64") entry["shape"] = new JsonArray(Numel(entry) / 2);
            entry["dtype"] = dtype;
        });
        var (code, _, err) = CliRunner.Run("train", config, "--resume", run, "--set", "algorithm.iterations=6");
        Assert.True(code == 4, err);
        Assert.Contains(last, err);
        Assert.Contains(name!.Split('.', 2)[1], err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void ALinkToDevZeroIsRefusedWithoutAllocating()
    {
        var (run, _) = TrainedRun();
        var last = Path.Combine(run, "checkpoints", "last.safetensors");
        File.Delete(last);
        File.CreateSymbolicLink(last, "/dev/zero");
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var (code, _, err) = CliRunner.Run("eval", "--checkpoint", last, "--episodes", "2");
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        AssertRefused(code, err, last, "not a valid safetensors file");
        Assert.True(allocated < 64 << 20, $"{allocated} bytes allocated");
    }

    [Fact]
    public void AHeaderPromisingMoreThanTheFileIsRefusedBeforeReadingData()
    {
        var (run, _) = TrainedRun();
        var last = Path.Combine(run, "checkpoints", "last.safetensors");
        EditHeader(last, h =>
        {
            var name = h.Select(kv => kv.Key).First(k => k.StartsWith("param.", StringComparison.Ordinal));
            h[name]!["shape"] = new JsonArray(1L << 29);
            h[name]!["data_offsets"] = new JsonArray(0L, 4L << 29);
        });
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var (code, _, err) = CliRunner.Run("eval", "--checkpoint", last, "--episodes", "2");
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Equal(4, code);
        Assert.Contains(last, err);
        Assert.True(allocated < 64 << 20, $"{allocated} bytes allocated");
    }

    [Fact]
    public void ANaNValidationLossIsDivergenceAndNotSavedAsBest()
    {
        var dir = TestPaths.NewTempDir("nan");
        var config = Path.Combine(dir, "c.yaml");
        File.WriteAllText(config, Sinusoid);
        var run = Path.Combine(dir, "run");
        // One inner step of 3 trains finitely; 200 of them at validation overflow.
        var (code, _, err) = CliRunner.Run("train", config, "--out", run, "--set", "algorithm.inner_lr=3", "--set", "algorithm.test_inner_steps=200", "--set", "eval.interval=1");
        Assert.True(code == 1, err);
        Assert.Contains("diverged", err);
        Assert.Contains("validation loss NaN", err);
        Assert.False(File.Exists(Path.Combine(run, "checkpoints", "best.safetensors")));
    }

    [Fact]
    public void ANaNEvalResultIsPrintedAndWrittenAsNullWithAReason()
    {
        var (run, _) = TrainedRun();
        var result = Path.Combine(run, "nan-eval.json");
        var (code, stdout, err) = CliRunner.Run("eval", "--checkpoint", run, "--episodes", "4", "--out", result,
            "--set", "algorithm.inner_lr=3", "--set", "algorithm.test_inner_steps=200");
        Assert.True(code == 1, err);
        Assert.Contains("MSE NaN", stdout);
        Assert.Contains("diverged", err);
        Assert.DoesNotContain("   at ", err);
        var json = JsonNode.Parse(File.ReadAllText(result))!;
        Assert.Null(json["mean"]);
        Assert.Contains("diverged", json["non_finite"]!.GetValue<string>());
        Assert.Equal(4, json["episodes"]!.GetValue<int>());
    }

    [Fact]
    public void ARegressionRunLogsItsMseAndNoAccuracy()
    {
        var (run, _) = TrainedRun();
        var log = File.ReadAllText(Path.Combine(run, "train.log"));
        Assert.Contains(", mse ", log);
        Assert.DoesNotContain("NaN", log);
    }
}
