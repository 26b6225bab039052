using System.Diagnostics;
using System.Text.Json;
using MetaRun.Data;
using MetaRun.Evaluation;
using MetaRun.Tests.Cli;
using MetaRun.Training;

namespace MetaRun.Tests.Training;

/// <summary>
/// A run's TensorBoard event files read back by an independent reader (tensorboard/read_tfevents.py
/// over Debian's python3-protobuf, with message definitions of its own in event.proto).
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class TensorBoardLogTests
{
    private static readonly string Tools = Path.Combine(TestPaths.RepoRoot, "tests", "MetaRun.Tests", "Core", "Training", "tensorboard");

    private static readonly string[] Settings =
        ["algorithm.iterations=8", "algorithm.inner_lr=0.01", "eval.interval=3", "eval.episodes=4", "checkpoint.interval=2", "threads=1", "data.test.shots=5", "data.test.queries=5"];

    private static TrainingRun Start(string? config, string? outDir, string? resumeDir, params string[] sets) =>
        TrainingRun.Start(new TrainingRequest(config, config != null ? [.. Settings, .. sets] : sets, outDir, resumeDir, null, false), _ => { });

    private static string Config(string dir)
    {
        var path = Path.Combine(dir, "c.yaml");
        File.WriteAllText(path, TestConfigs.TinySinusoid);
        return path;
    }

    [SkippableFact]
    public void EveryRecordOfACrashedResumedAndEvaluatedRunReadsBackEqualToMetricsCsv()
    {
        var pb = CompiledProto();
        var dir = TestPaths.NewTempDir("tensorboard");
        var run = Path.Combine(dir, "run");
        using (var r = Start(Config(dir), run, null))
            Assert.Throws<InvalidOperationException>(() => r.Train(new CrashAfter(5), default));
        using (var r = Start(null, null, run)) r.Train(null, default);
        var result = Evaluator.Run(run, Split.Test, 3, [], null);
        Evaluator.Write(result, null);

        Assert.Equal(3, Directory.GetFiles(run, EventFile.Prefix + "*").Length);
        var (code, output) = Read(pb, run);
        Assert.True(code == 0, output);
        var doc = JsonDocument.Parse(output).RootElement;
        // Every row's train loss, learning rate, and the validations at 3, 6 and 8 with their CIs.
        Assert.True(doc.GetProperty("compared").GetInt32() >= 8 + 3 * 2, output);
        Assert.Equal([5], doc.GetProperty("restarts").EnumerateArray().Select(e => e.GetInt64()));
        string[] tags = ["lr/outer", "time/seconds_per_iteration", "train/loss", "val/loss", "val/mse", "val/mse_ci95"];
        Assert.Equal(tags, doc.GetProperty("tags").EnumerateArray().Select(e => e.GetString()).Where(t => !t!.StartsWith("eval/")));
        Assert.Contains("| algorithm | maml |", doc.GetProperty("settings").GetString());
        var eval = doc.GetProperty("eval").GetProperty($"eval/{TensorBoardLog.Label(result)}/mse");
        Assert.Equal((float)result.Summary.Mean, eval.GetProperty(result.Iteration.ToString()).GetSingle());
        foreach (var s in doc.GetProperty("seconds").EnumerateObject())
            Assert.True(s.Value.GetDouble() > 0 && s.Value.GetDouble() < 60, $"{s.Name}: {s.Value}");

        // The reader can fail: one flipped byte inside a record is a CRC mismatch.
        var file = Directory.GetFiles(run, EventFile.Prefix + "*").Order(StringComparer.Ordinal).Last(f => f.EndsWith(".train"));
        var bytes = File.ReadAllBytes(file);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(file, bytes);
        var (bad, why) = Read(pb, run);
        Assert.Equal(1, bad);
        Assert.Contains("CRC mismatch", why);
    }

    [Fact]
    public void OutputTensorboardFalseWritesNoEventFiles()
    {
        var dir = TestPaths.NewTempDir("tensorboard");
        var run = Path.Combine(dir, "run");
        using (var r = Start(Config(dir), run, null, "output.tensorboard=false")) r.Train(null, default);
        Evaluator.Write(Evaluator.Run(run, Split.Test, 2, [], null), null);
        Assert.Empty(Directory.GetFiles(run, EventFile.Prefix + "*"));
        Assert.True(File.Exists(Path.Combine(run, "metrics.csv")));
    }

    // protoc and python3-protobuf from Debian (installed here when missing and running as root).
    private static string CompiledProto()
    {
        if (!File.Exists("/usr/bin/protoc") || !File.Exists("/usr/lib/python3/dist-packages/google/protobuf/__init__.py"))
        {
            Skip.IfNot(Environment.UserName == "root", "protobuf-compiler and python3-protobuf are not installed (apt-get install protobuf-compiler python3-protobuf)");
            var (code, output) = Exec("apt-get", "install", "-y", "-q", "protobuf-compiler", "python3-protobuf");
            Assert.True(code == 0, "apt-get install protobuf-compiler python3-protobuf failed:\n" + output);
        }
        var outDir = TestPaths.NewTempDir("proto");
        var (rc, log) = Exec("/usr/bin/protoc", $"--proto_path={Tools}", $"--python_out={outDir}", Path.Combine(Tools, "event.proto"));
        Assert.True(rc == 0, log);
        return outDir;
    }

    private static (int Code, string Output) Read(string pb, string run)
    {
        var (code, output) = Exec("/usr/bin/python3", Path.Combine(Tools, "read_tfevents.py"), pb, run);
        return (code, output);
    }

    private static (int Code, string Output) Exec(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(true); Assert.Fail($"{file} did not finish"); }
        return (p.ExitCode, p.ExitCode == 0 ? stdout.Result : stderr.Result + stdout.Result);
    }
}
