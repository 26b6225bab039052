using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Export;

/// <summary>What an exported file computes: logits through a linear head, logits from prototypes, or the body's embeddings.</summary>
public enum ExportedOutput { Head, Prototypes, Embeddings }

/// <summary>What `metarun export` wrote.</summary>
public sealed record ExportResult(string Path, string Model, ExportedOutput Output, long[] InputShape, long Outputs, int Weights, long Bytes, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// `metarun export --onnx`: a checkpoint's network as an ONNX file that ONNX Runtime (or any
/// ONNX consumer) runs without MetaRun. The graph is built from the model's
/// <see cref="IDescribedModel.Body"/> (a list of <see cref="GraphLayer"/>s), then the classifier:
/// the linear head (the checkpoint's, or the adapted one given with --adapted), or for an
/// adapted metric learner (ProtoNet's <c>prototypes</c>) −‖f(x) − c‖² to each prototype, or,
/// for a metric learner without --adapted, the embeddings themselves. Batch norm normalises with
/// the statistics of the batch it is given, as in MetaRun, or with a model.layers network's
/// running statistics where it uses them; the input preprocessing goes into the file's metadata (metarun.*).
/// </summary>
public static class OnnxExport
{
    public static ExportResult Run(string checkpointPath, string? adaptedPath, string onnxPath)
    {
        var file = RunDirectory.ResolveCheckpoint(checkpointPath);
        using var checkpoint = Checkpoint.Load(file);
        var config = checkpoint.Config;
        var info = AlgorithmRegistry.Get(config.Algorithm.Name);
        var weights = new Dictionary<string, Tensor>(checkpoint.Parameters);
        var metadata = new Dictionary<string, string>();
        TensorFile? adapted = null;
        var constants = new List<Tensor>();
        try
        {
            if (adaptedPath != null)
            {
                try { adapted = Safetensors.Load(adaptedPath); }
                catch (InvalidDataException e) { throw new CheckpointException(e.Message, e); }
                foreach (var (name, t) in adapted.Tensors) weights[name] = t;
                if (adapted.Metadata.TryGetValue("classes", out var classes)) metadata["metarun.classes"] = classes;
            }
            var model = Describe(config, weights, constants, file);
            var output = adapted?.Tensors.ContainsKey("prototypes") == true ? ExportedOutput.Prototypes
                : info.Head == HeadKind.None ? ExportedOutput.Embeddings : ExportedOutput.Head;
            if (info.Head == HeadKind.None && adapted != null && output != ExportedOutput.Prototypes)
                throw new ConfigException($"--adapted: {adaptedPath} has no 'prototypes'; of the metric learners only protonet's adapted classifier is exported. Leave out --adapted to export the {info.Name} body's embeddings");
            var graph = new GraphBuilder(weights, file);
            var x = graph.Body(model.Body, "input", model.InputShape.Length + 1);
            long outputs;
            switch (output)
            {
                case ExportedOutput.Head:
                    x = graph.Linear(new GraphLinear(model.HeadWeight, model.HeadBias), x);
                    outputs = graph.Shape(model.HeadWeight)[0];
                    break;
                case ExportedOutput.Prototypes:
                    x = graph.ProtoLogits(x, "prototypes");
                    outputs = graph.Shape("prototypes")[0];
                    break;
                default:
                    outputs = -1;
                    break;
            }
            var format = config.Data.Dataset.HasImages() ? ImageFormat.For(config.Data) : null;
            Describe(metadata, config, info, model, format, output, checkpointPath: Path.GetFullPath(file), adaptedPath: adaptedPath == null ? null : Path.GetFullPath(adaptedPath));
            var outputName = output == ExportedOutput.Embeddings ? "embeddings" : "logits";
            var onnx = new OnnxModel
            {
                GraphName = $"metarun-{model.Name}",
                Nodes = graph.Nodes,
                Initializers = graph.Initializers,
                Inputs = [new OnnxValue("input", ["batch", .. model.InputShape.Cast<object>()], format == null ? "feature vectors" : "images, preprocessed as metadata metarun.preprocessing says")],
                Outputs = [graph.Output(x, outputName)],
                Metadata = metadata,
                DocString = metadata["metarun.description"],
                ProducerVersion = typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "",
            };
            var bytes = onnx.ToBytes();
            try { File.WriteAllBytes(onnxPath, bytes); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new MetaRunException(ExitCodes.IoProblem, $"{onnxPath}: cannot write the ONNX file ({(e is DirectoryNotFoundException ? "its folder does not exist" : e is UnauthorizedAccessException ? "permission denied" : e.Message)})");
            }
            return new ExportResult(Path.GetFullPath(onnxPath), model.Name, output, model.InputShape, outputs, graph.Initializers.Count, bytes.LongLength, metadata);
        }
        finally
        {
            adapted?.Dispose();
            foreach (var t in constants) t.Dispose();
        }
    }

    /// <summary>A network as the exporter sees it: its input, its body's layers and its head's weight names.</summary>
    private sealed record Network(string Name, long[] InputShape, IReadOnlyList<GraphLayer> Body, string HeadWeight, string HeadBias);

    /// <param name="constants">Receives copies of the tensors the model holds that the checkpoint does not (a model.layers network's frozen weights and running statistics, read again from model.init); they join <paramref name="weights"/>.</param>
    private static Network Describe(RunConfig config, Dictionary<string, Tensor> weights, List<Tensor> constants, string file)
    {
        var images = config.Data.Dataset.HasImages();
        // The model is built only for its description and weight names; the weights come from the files.
        var probeShape = images ? ImageFormat.For(config.Data).InputShape : [1L];
        using var probe = ModelFactory.Create(config, probeShape, 1, Device.Cpu, 0);
        var described = probe as IDescribedModel
            ?? throw new ConfigException($"{file}: {probe.GetType().Name} does not describe its layers, so it cannot be exported");
        var name = probe is LayerNetwork ? "layers" : probe.GetType().Name.ToLowerInvariant();
        if (probe is LayerNetwork net)
            foreach (var (key, t) in net.Constants)
                if (!weights.ContainsKey(key))
                {
                    var copy = t.Detach().Clone().DetachFromScope();
                    constants.Add(copy);
                    weights[key] = copy;
                }
        var headWeight = probe.ParameterNames[probe.IndicesOf(ParameterRole.HeadWeight).Single()];
        var headBias = probe.ParameterNames[probe.IndicesOf(ParameterRole.HeadBias).Single()];
        if (images) return new Network(name, probeShape, described.Body, headWeight, headBias);
        // Vector inputs: their width is the first linear layer's.
        var first = described.Body.OfType<GraphLinear>().Select(l => l.Weight).FirstOrDefault() ?? headWeight;
        if (!weights.TryGetValue(first, out var w)) throw new CheckpointException($"{file}: parameter '{first}' is missing");
        return new Network(name, [w.Size(1)], described.Body, headWeight, headBias);
    }

    private static void Describe(Dictionary<string, string> m, RunConfig config, AlgorithmInfo info, Network model, ImageFormat? format, ExportedOutput output,
        string checkpointPath, string? adaptedPath)
    {
        static string Json(JsonNode n) => n.ToJsonString();
        var inv = CultureInfo.InvariantCulture;
        m["metarun.algorithm"] = info.Name;
        m["metarun.model"] = model.Name;
        m["metarun.dataset"] = config.Data.Dataset.Yaml();
        m["metarun.checkpoint"] = checkpointPath;
        if (adaptedPath != null) m["metarun.adapted"] = adaptedPath;
        m["metarun.input_shape"] = Json(new JsonArray([.. model.InputShape.Select(d => (JsonNode)d)]));
        if (format != null)
        {
            m["metarun.image_size"] = format.Size.ToString(inv);
            m["metarun.channels"] = format.Channels.ToString(inv);
            m["metarun.channel_order"] = format.Channels == 1 ? "gray" : "RGB";
            m["metarun.invert"] = format.Invert ? "true" : "false";
            m["metarun.scale"] = Json(new JsonArray([.. format.Scale.Select(s => (JsonNode)s)]));
            m["metarun.offset"] = Json(new JsonArray([.. format.Offset.Select(s => (JsonNode)s)]));
            m["metarun.preprocessing"] =
                $"decode to {(format.Channels == 1 ? "gray (luma)" : "RGB")}, resize to {format.Size}×{format.Size} (antialiased bilinear, aspect ratio not kept)" +
                (format.Invert ? ", invert (byte = 255 − byte)" : "") +
                $", then per channel value = byte × scale[c] + offset[c]; layout [batch, {format.Channels}, {format.Size}, {format.Size}] float32, row-major";
        }
        else
        {
            m["metarun.preprocessing"] = $"none: each example is the vector of {model.InputShape[0]} numbers it was in the training file, [batch, {model.InputShape[0]}] float32";
        }
        m["metarun.batch_norm"] = model.Body.Any(HasBatchNorm)
            ? "batch norm normalises with the statistics of the batch given (MetaRun keeps no running statistics): classify a batch of images together, as MetaRun does " +
              "(the query set alone for fast-weight learners; for protonet the support images followed by the queries)"
            : "none";
        m["metarun.output"] = output switch
        {
            ExportedOutput.Head => "logits [batch, classes]: the linear head" + (adaptedPath != null ? " adapted to the support set" : " of the checkpoint (not adapted; export with --adapted for your classes)"),
            ExportedOutput.Prototypes => "logits [batch, classes]: −‖embedding − prototype‖² for each class prototype",
            _ => "embeddings [batch, features]: the body's output (compare them to class prototypes or support embeddings)",
        };
        m["metarun.description"] = $"MetaRun {info.Name} {model.Name}: {m["metarun.output"]}. Input: {m["metarun.preprocessing"]}.";
    }

    private static bool HasBatchNorm(GraphLayer l) => l is GraphBatchNorm { RunningMean: null } || (l is GraphResidual r && r.Main.Concat(r.Shortcut).Any(HasBatchNorm));

    /// <summary>ONNX nodes and constants for a list of layers, one value name per intermediate result.</summary>
    private sealed class GraphBuilder(IReadOnlyDictionary<string, Tensor> weights, string file)
    {
        public List<OnnxNode> Nodes { get; } = [];
        public List<OnnxInitializer> Initializers { get; } = [];
        private readonly HashSet<string> added = [];
        private readonly Dictionary<string, long[]> shapes = [];
        private int next;

        public OnnxValue Output(string value, string name)
        {
            Nodes.Add(new OnnxNode("Identity", [value], [name], []));
            return new OnnxValue(name, ["batch", "n"]);
        }

        public long[] Shape(string weight) { Get(weight); return shapes[weight]; }

        /// <summary>The layers applied to <paramref name="x"/> of rank <paramref name="rank"/> (4 for images, 2 for vectors).</summary>
        public string Body(IReadOnlyList<GraphLayer> layers, string x, int rank)
        {
            foreach (var layer in layers)
            {
                (x, rank) = layer switch
                {
                    GraphConv c => (Conv(c, x), 4),
                    GraphBatchNorm b => (BatchNorm(b, x, rank), rank),
                    GraphRelu => (Op("Relu", [x]), rank),
                    GraphLeakyRelu l => (Op("LeakyRelu", [x], OnnxAttribute.Of("alpha", (float)l.Slope)), rank),
                    GraphSigmoid => (Op("Sigmoid", [x]), rank),
                    GraphTanh => (Op("Tanh", [x]), rank),
                    GraphPool p => (Pool(p, x), 4),
                    GraphAffine a => (Affine(a, x), rank),
                    GraphGlobalAveragePool => (Op("ReduceMean", [x], OnnxAttribute.Of("axes", 2L, 3L), OnnxAttribute.Of("keepdims", 0L)), 2),
                    GraphFlatten => (Op("Flatten", [x], OnnxAttribute.Of("axis", 1L)), 2),
                    GraphLinear l => (Linear(l, x), 2),
                    GraphResidual r => (Op("Add", [Body(r.Main, x, rank), r.Shortcut.Count == 0 ? x : Body(r.Shortcut, x, rank)]), rank),
                    _ => throw new NotSupportedException($"ONNX export of {layer.GetType().Name}"),
                };
            }
            return x;
        }

        public string Linear(GraphLinear l, string x)
        {
            Expect(l.Weight, 2);
            return Op("Gemm", l.Bias == null ? [x, Weight(l.Weight)] : [x, Weight(l.Weight), Weight(l.Bias)], OnnxAttribute.Of("transB", 1L));
        }

        /// <summary>−Σ_f (x_f − c_{k,f})² for every row x and prototype c_k, computed as MetaRun does (differences, not the expanded square).</summary>
        public string ProtoLogits(string embeddings, string prototypes)
        {
            Expect(prototypes, 2);
            var p = shapes[prototypes];
            var c = Const($"{prototypes}.broadcast", [1, p[0], p[1]], Floats(prototypes));
            var diff = Op("Sub", [Op("Unsqueeze", [embeddings, Longs("axis1", 1)]), c]);
            return Op("Neg", [Op("ReduceSum", [Op("Mul", [diff, diff]), Longs("axis2", 2)], OnnxAttribute.Of("keepdims", 0L))]);
        }

        private string Conv(GraphConv c, string x)
        {
            Expect(c.Weight, 4);
            var k = shapes[c.Weight];
            string[] inputs = c.Bias == null ? [x, Weight(c.Weight)] : [x, Weight(c.Weight), Weight(c.Bias)];
            return Op("Conv", inputs, OnnxAttribute.Of("kernel_shape", k[2], k[3]), OnnxAttribute.Of("strides", c.Stride, c.Stride),
                OnnxAttribute.Of("pads", c.Padding, c.Padding, c.Padding, c.Padding), OnnxAttribute.Of("group", (long)c.Groups));
        }

        private string Pool(GraphPool p, string x)
        {
            OnnxAttribute[] window = [OnnxAttribute.Of("kernel_shape", p.Kernel, p.Kernel), OnnxAttribute.Of("strides", p.Stride, p.Stride),
                OnnxAttribute.Of("pads", p.Padding, p.Padding, p.Padding, p.Padding)];
            // ONNX leaves the padding out of an average's divisor unless told; PyTorch counts it.
            return p.Average ? Op("AveragePool", [x], [.. window, OnnxAttribute.Of("count_include_pad", 1L)]) : Op("MaxPool", [x], window);
        }

        private string Affine(GraphAffine a, string x)
        {
            long[] perChannel = [1, a.Scale.Count, 1, 1];
            var scale = Const($"affine{next++}.scale", perChannel, [.. a.Scale]);
            var shift = Const($"affine{next++}.shift", perChannel, [.. a.Shift]);
            return Op("Add", [Op("Mul", [x, scale]), shift]);
        }

        /// <summary>(x − mean) / √(var + ε) · γ + β with the batch's mean and biased variance per channel (over N, H, W).</summary>
        private string BatchNorm(GraphBatchNorm b, string x, int rank)
        {
            if (b.RunningMean != null)
                return Op("BatchNormalization", [x, Weight(b.Weight), Weight(b.Bias), Weight(b.RunningMean), Weight(b.RunningVar!)], OnnxAttribute.Of("epsilon", (float)b.Eps));
            long[] axes = rank == 4 ? [0, 2, 3] : [0];
            var c = Shape(b.Weight)[0];
            long[] perChannel = rank == 4 ? [1, c, 1, 1] : [1, c];
            var mean = Op("ReduceMean", [x], OnnxAttribute.Of("axes", axes), OnnxAttribute.Of("keepdims", 1L));
            var centred = Op("Sub", [x, mean]);
            var variance = Op("ReduceMean", [Op("Mul", [centred, centred])], OnnxAttribute.Of("axes", axes), OnnxAttribute.Of("keepdims", 1L));
            var eps = Const($"eps{next++}", [], [(float)b.Eps]);
            var normalised = Op("Div", [centred, Op("Sqrt", [Op("Add", [variance, eps])])]);
            var gamma = Const($"{b.Weight}.per_channel", perChannel, Floats(b.Weight));
            var beta = Const($"{b.Bias}.per_channel", perChannel, Floats(b.Bias));
            return Op("Add", [Op("Mul", [normalised, gamma]), beta]);
        }

        private string Op(string type, string[] inputs, params OnnxAttribute[] attributes)
        {
            var output = $"{type.ToLowerInvariant()}_{next++}";
            Nodes.Add(new OnnxNode(type, inputs, [output], attributes));
            return output;
        }

        private void Expect(string weight, int rank)
        {
            var shape = Shape(weight);
            if (shape.Length != rank) throw new CheckpointException($"{file}: '{weight}' has shape [{string.Join(", ", shape)}]; a {rank}-D tensor was expected");
        }

        private Tensor Get(string name)
        {
            if (!weights.TryGetValue(name, out var t)) throw new CheckpointException($"{file}: parameter '{name}' is missing");
            shapes[name] = t.Shape;
            return t;
        }

        private float[] Floats(string name)
        {
            using var scope = Torch.NewScope();
            return Get(name).Detach().To(ScalarType.Float32).Contiguous().ToArray<float>();
        }

        /// <summary>The named weight as an initializer (once), its name as the value.</summary>
        private string Weight(string name)
        {
            if (added.Add(name)) Initializers.Add(new OnnxInitializer(name, Get(name).Shape, Floats(name)));
            return name;
        }

        private string Const(string name, long[] dims, float[] values)
        {
            Initializers.Add(new OnnxInitializer(name, dims, values));
            return name;
        }

        private string Longs(string name, params long[] values)
        {
            if (added.Add(name)) Initializers.Add(new OnnxInitializer(name, [values.Length], Longs: values));
            return name;
        }
    }
}
