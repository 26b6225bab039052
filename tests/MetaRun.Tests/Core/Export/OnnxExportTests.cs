using System.Diagnostics;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Tests.Cli;
using MetaRun.Tests.Data;
using MetaRun.Training;
using Microsoft.ML.OnnxRuntime;

namespace MetaRun.Tests.Export;

/// <summary>
/// `metarun export --onnx` round-trips through ONNX Runtime (from NuGet, as a user's program
/// would run the file): checkpoints trained for a few steps on real Omniglot, adapted to a real
/// test episode as `metarun adapt --save-adapted` saves them, give the same logits in ONNX
/// Runtime as in MetaRun, to 1e-5 (relative to the logit's size where it is above 1), for
/// conv4 and ResNet-12 under MAML, a ProtoNet classifier with its prototypes, and an MLP on
/// feature vectors. Where Debian's python3-onnx is installed its checker validates every file too.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class OnnxExportTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("onnx");

    public void Dispose()
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }

    [Theory]
    [InlineData("maml", "conv4")]
    [InlineData("maml", "resnet12")]
    [InlineData("protonet", "conv4")]
    [InlineData("maml", "layers")]
    [InlineData("protonet", "layers")]
    public void The_exported_classifier_gives_metaruns_logits_on_real_omniglot_images(string algorithm, string model)
    {
        var run = Path.Combine(dir, "run");
        var configFile = model == "layers" ? EveryLayerConfig() : Path.Combine(TestPaths.Configs, "omniglot", "maml-5w1s.yaml");
        var args = new List<string> { "train", configFile, "--out", run, "--data-root", TestPaths.SharedDatasets };
        string[] sets = [$"algorithm.name={algorithm}", "data.split=lake", "algorithm.iterations=2", "algorithm.meta_batch_size=1",
            "eval.interval=0", "data.train.queries=2", "data.test.queries=3", "threads=1", "workers=1",
            algorithm == "protonet" ? "algorithm.test_inner_steps=0" : "algorithm.test_inner_steps=2",
            .. model == "layers" ? (string[])[] : [$"model.name={model}", "model.filters=8"]];
        foreach (var s in sets) args.AddRange(["--set", s]);
        var (code, _, err) = CliRunner.Run([.. args]);
        Assert.True(code == 0, err);

        // Test episode 0 adapted as `adapt` adapts it; what it saves with --save-adapted.
        var checkpointFile = RunDirectory.ResolveCheckpoint(run);
        using var checkpoint = Checkpoint.Load(checkpointFile);
        var config = checkpoint.Config;
        config.Data.Root = TestPaths.SharedDatasets;
        Experiment.ApplyProcessSettings(config);
        using var experiment = Experiment.Create(config, null);
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, checkpointFile);
        using var scope = Torch.NewScope();
        using var batch = experiment.Family.Sample(Split.Test, 0, 1, experiment.TestShape);
        var episode = new Episode(batch.SupportX[0], batch.SupportY[0], batch.QueryX[0], batch.QueryY[0]);
        var adapted = experiment.Learner.AdaptTo(episode);
        var adaptedFile = Path.Combine(dir, "adapted.safetensors");
        using (Torch.NoGrad())
            Safetensors.Save(adaptedFile, adapted.State.ToDictionary(kv => kv.Key, kv => kv.Value.Detach().To(Device.Cpu).Contiguous()),
                new Dictionary<string, string> { ["classes"] = "[\"a\",\"b\",\"c\",\"d\",\"e\"]" });

        var onnx = Path.Combine(dir, "model.onnx");
        (code, var output, err) = CliRunner.Run("export", "--checkpoint", run, "--adapted", adaptedFile, "--onnx", onnx);
        Assert.True(code == 0, err);
        Assert.Contains("logits for 5 classes", output);
        CheckWithOnnxChecker(onnx);

        // ProtoNet embeds support and query in one batch (batch-norm statistics over both): so does its input here.
        var input = algorithm == "protonet" ? Torch.Cat([episode.SupportX, episode.QueryX]) : episode.QueryX;
        var (logits, metadata) = RunOnnx(onnx, input);
        if (algorithm == "protonet") logits = logits[((int)episode.SupportX.Size(0) * 5)..];
        AssertClose(adapted.Logits.ToArray<float>(), logits);
        Assert.Equal("28", metadata["metarun.image_size"]);
        Assert.Equal("1", metadata["metarun.channels"]);
        Assert.Equal("true", metadata["metarun.invert"]);
        Assert.Equal("[\"a\",\"b\",\"c\",\"d\",\"e\"]", metadata["metarun.classes"]);

        // Without --adapted: the checkpoint's own network (MAML's initial head; ProtoNet's embeddings).
        var plain = Path.Combine(dir, "plain.onnx");
        (code, _, err) = CliRunner.Run("export", "--checkpoint", run, "--onnx", plain);
        Assert.True(code == 0, err);
        using (Torch.NoGrad())
        {
            var model0 = experiment.Model;
            var expected = algorithm == "protonet" ? model0.Embed(episode.QueryX, model0.Parameters) : model0.Forward(episode.QueryX, model0.Parameters);
            AssertClose(expected.ToArray<float>(), RunOnnx(plain, episode.QueryX).Logits);
        }
    }

    /// <summary>
    /// A model.layers network with every layer type the exporter writes: an input normalisation,
    /// a frozen convolution and batch norm running statistics from model.init (constants the
    /// checkpoint does not hold), a grouped convolution, batch statistics, leaky ReLU, sigmoid,
    /// tanh, average pooling with padding, max pooling, an identity-shortcut residual, dropout,
    /// flatten and a linear layer without bias before the head.
    /// </summary>
    private string EveryLayerConfig()
    {
        using (var scope = Torch.NewScope())
        using (var g = new Generator(3))
            Safetensors.Save(Path.Combine(dir, "init.safetensors"), new Dictionary<string, Tensor>
            {
                ["conv1.weight"] = Torch.Randn([8, 1, 3, 3], generator: g) * 0.3, ["conv1.bias"] = Torch.Randn([8], generator: g) * 0.1,
                ["bn1.running_mean"] = Torch.Randn([8], generator: g) * 0.1, ["bn1.running_var"] = Torch.Rand([8], generator: g) + 0.5,
            });
        var path = Path.Combine(dir, "layers.yaml");
        File.WriteAllText(path, $$"""
            name: every-layer
            seed: 1
            data:
              dataset: omniglot
              train: {ways: 5, shots: 1, queries: 1}
              test: {ways: 5, shots: 1, queries: 15}
            model:
              init: {{Path.Combine(dir, "init.safetensors")}}
              freeze: [conv1]
              layers:
                - {type: normalize, mean: [0.1], std: [0.5]}
                - {type: conv, out: 8, kernel: 3, padding: 1, name: conv1}
                - {type: batchnorm, name: bn1}
                - {type: leaky_relu, slope: 0.1}
                - {type: conv, out: 8, kernel: 3, padding: 1, groups: 2}
                - {type: batchnorm, stats: batch}
                - sigmoid
                - {type: avgpool, kernel: 3, stride: 2, padding: 1}
                - type: residual
                  layers:
                    - {type: conv, out: 8, kernel: 3, padding: 1, bias: false}
                    - tanh
                - {type: maxpool, kernel: 2}
                - {type: dropout, p: 0.2}
                - flatten
                - {type: linear, out: 16, bias: false}
                - relu
                - linear
            algorithm: {name: maml, inner_lr: 0.4, inner_steps: 1, outer_optimizer: adam, outer_lr: 0.001, meta_batch_size: 1, iterations: 2}
            """);
        return path;
    }

    [SkippableFact]
    public void An_mlp_on_feature_vectors_exports_with_its_adapted_head()
    {
        var file = Path.Combine(FeatureDatasetTests.WriteDigits(Path.Combine(dir, "digits")), "digits.npy");
        var run = Path.Combine(dir, "run");
        var (code, _, err) = CliRunner.Run("train", Path.Combine(TestPaths.Configs, "features", "digits-maml-5w1s.yaml"), "--out", run,
            "--set", $"data.root={file}", "--set", "algorithm.iterations=5", "--set", "threads=1");
        Assert.True(code == 0, err);
        var checkpointFile = RunDirectory.ResolveCheckpoint(run);
        using var checkpoint = Checkpoint.Load(checkpointFile);
        using var experiment = Experiment.Create(checkpoint.Config, null);
        checkpoint.LoadInto(experiment.Learner.OuterParameterNames, experiment.Learner.OuterParameters, checkpointFile);
        using var scope = Torch.NewScope();
        using var batch = experiment.Family.Sample(Split.Test, 0, 1, experiment.TestShape);
        var adapted = experiment.Learner.AdaptTo(new Episode(batch.SupportX[0], batch.SupportY[0], batch.QueryX[0], batch.QueryY[0]));
        var adaptedFile = Path.Combine(dir, "adapted.safetensors");
        using (Torch.NoGrad())
            Safetensors.Save(adaptedFile, adapted.State.ToDictionary(kv => kv.Key, kv => kv.Value.Detach().Contiguous()));
        var onnx = Path.Combine(dir, "mlp.onnx");
        (code, _, err) = CliRunner.Run("export", "--checkpoint", run, "--adapted", adaptedFile, "--onnx", onnx);
        Assert.True(code == 0, err);
        CheckWithOnnxChecker(onnx);
        var (logits, metadata) = RunOnnx(onnx, batch.QueryX[0]);
        AssertClose(adapted.Logits.ToArray<float>(), logits);
        Assert.Equal("[64]", metadata["metarun.input_shape"]);
        Assert.Equal("none", metadata["metarun.batch_norm"]);
    }

    [Fact]
    public void An_adapted_file_that_is_not_safetensors_is_a_checkpoint_error_naming_it()
    {
        var (cdir, config) = TestConfigs.Write(TestConfigs.TinySinusoid);
        var run = Path.Combine(cdir, "run");
        Assert.Equal(0, CliRunner.Run("train", config, "--out", run).Code);
        var bad = Path.Combine(dir, "adapted.safetensors");
        File.WriteAllText(bad, "not a tensor file");
        var (code, _, err) = CliRunner.Run("export", "--checkpoint", run, "--adapted", bad, "--onnx", Path.Combine(dir, "m.onnx"));
        Assert.Equal(ExitCodes.CheckpointProblem, code);
        Assert.Contains(bad, err);
        Assert.False(File.Exists(Path.Combine(dir, "m.onnx")));
    }

    /// <summary>The file's output for <paramref name="input"/> in ONNX Runtime, and its metadata.</summary>
    internal static (float[] Logits, IReadOnlyDictionary<string, string> Metadata) RunOnnx(string path, Tensor input)
    {
        using var session = new InferenceSession(path);
        var data = input.Contiguous().ToArray<float>();
        using var value = OrtValue.CreateTensorValueFromMemory(data, input.Shape);
        using var options = new RunOptions();
        using var outputs = session.Run(options, ["input"], [value], session.OutputNames);
        return (outputs[0].GetTensorDataAsSpan<float>().ToArray(), session.ModelMetadata.CustomMetadataMap);
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"logit {i}: MetaRun {expected[i]}, ONNX Runtime {actual[i]}");
    }

    /// <summary>The onnx package's full checker (Debian's python3-onnx), where installed; scripts/setup.sh installs it for the tests.</summary>
    private static void CheckWithOnnxChecker(string path)
    {
        if (!File.Exists("/usr/bin/python3")) return;
        var probe = Process.Start(new ProcessStartInfo("/usr/bin/python3", ["-c", "import onnx"]) { RedirectStandardError = true });
        if (probe == null) return;
        probe.WaitForExit();
        if (probe.ExitCode != 0) return;
        using var p = Process.Start(new ProcessStartInfo("/usr/bin/python3", ["-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", path])
        { RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, err);
    }
}
