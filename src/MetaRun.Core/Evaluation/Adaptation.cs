using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsvHelper;
using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using MetaRun.Data;
using MetaRun.Models;
using MetaRun.Training;

namespace MetaRun.Evaluation;

/// <summary>
/// One query image's prediction: its file, its true class when the query folder has class
/// subfolders, the predicted class and every class's probability; its predictive entropy (nats)
/// and whether that is above the "uncertain" threshold.
/// </summary>
public sealed record Prediction(string Image, string? Truth, string Predicted, double Probability, double[] Probabilities, double Entropy = 0, bool Uncertain = false);

/// <summary>What `metarun adapt` did: the support classes (label order), the predictions, and for a labelled query its accuracy and confusion table [true, predicted].</summary>
public sealed record AdaptationResult(
    string Algorithm, string Checkpoint, string[] Classes, int[] Shots, int? Steps, IReadOnlyList<Prediction> Predictions,
    double? Accuracy, int[][]? Confusion, double Seconds)
{
    /// <summary>An image is flagged uncertain when its predictive entropy exceeds this share of the largest possible, ln(classes).</summary>
    /// <summary>What the support and query hold: "images", or "examples" (rows of a features file).</summary>
    public string Unit { get; init; } = "images";
    public double UncertainAbove { get; init; } = Adaptation.DefaultUncertainAbove;

    public JsonObject ToJson()
    {
        var json = new JsonObject
        {
            ["algorithm"] = Algorithm,
            ["checkpoint"] = Checkpoint,
            ["classes"] = new JsonArray([.. Classes.Select(c => (JsonNode)c)]),
            ["shots"] = new JsonArray([.. Shots.Select(s => (JsonNode)s)]),
            ["steps"] = Steps,
            ["queries"] = Predictions.Count,
            ["predicted"] = new JsonObject(Classes.Select(c => KeyValuePair.Create(c, (JsonNode?)Predictions.Count(p => p.Predicted == c)))),
            ["seconds"] = Math.Round(Seconds, 2),
            ["uncertain"] = new JsonObject
            {
                ["measure"] = "predictive entropy in nats, −Σ p ln p over the classes",
                ["above"] = UncertainAbove,
                ["threshold"] = Math.Round(UncertainAbove * Math.Log(Classes.Length), 6),
                ["rule"] = "an image is uncertain when its entropy exceeds above × ln(classes)",
                ["count"] = Predictions.Count(p => p.Uncertain),
            },
            ["predictions"] = new JsonArray([.. Predictions.Select(p => (JsonNode)new JsonObject
            {
                ["image"] = p.Image,
                ["predicted"] = p.Predicted,
                ["probability"] = Math.Round(p.Probability, 6),
                ["entropy"] = Math.Round(p.Entropy, 6),
                ["uncertain"] = p.Uncertain,
                ["true"] = p.Truth,
            })]),
        };
        if (Accuracy is { } a)
        {
            json["accuracy"] = Math.Round(a, 6);
            json["correct"] = Predictions.Count(p => p.Truth == p.Predicted);
            json["confusion"] = new JsonObject
            {
                ["rows"] = "true class, in the order of classes",
                ["columns"] = "predicted class, in the order of classes",
                ["counts"] = new JsonArray([.. Confusion!.Select(r => (JsonNode)new JsonArray([.. r.Select(v => (JsonNode)v)]))]),
            };
        }
        return json;
    }
}

/// <summary>
/// `metarun adapt`: a checkpoint adapts to a support folder (one subfolder of images per class)
/// exactly as it adapts to a test episode (<see cref="IMetaLearner.AdaptTo"/>, the same call
/// evaluation scores), with the checkpoint's own image preprocessing, and classifies query images.
/// </summary>
public static class Adaptation
{
    /// <summary>The default of `adapt --uncertain-above`: half the entropy of a uniform guess.</summary>
    public const double DefaultUncertainAbove = 0.5;

    /// <summary>
    /// Adapts and predicts, and writes the adapted tensors to <paramref name="saveAdapted"/> when
    /// given; a ConfigException (exit 2) for a support set the checkpoint's head cannot take, a
    /// DataException (exit 3) naming an empty class or an image that does not decode.
    /// </summary>
    public static AdaptationResult Run(string checkpointPath, string supportDir, string? queryDir, int? steps, string? saveAdapted = null, double uncertainAbove = DefaultUncertainAbove)
    {
        if (!(uncertainAbove >= 0 && uncertainAbove <= 1)) throw new ConfigException($"--uncertain-above is {uncertainAbove}; give a share of the largest entropy between 0 and 1");
        var clock = Stopwatch.StartNew();
        var file = RunDirectory.ResolveCheckpoint(checkpointPath);
        using var checkpoint = Checkpoint.Load(file);
        var config = checkpoint.Config;
        var info = AlgorithmRegistry.Get(config.Algorithm.Name);
        if (config.Data.IsRegression)
            throw new ConfigException($"{file}: the checkpoint was trained on {config.Data.Dataset.Yaml()} regression; adapt classifies images");
        if (steps is { } n)
        {
            if (!info.TakesTestSteps)
                throw new ConfigException($"--steps: {info.Name} adapts without steps (it has no test_inner_steps); leave --steps out");
            if (n < 1) throw new ConfigException("--steps must be at least 1");
            config.Algorithm.TestInnerSteps = n;
        }

        var vectors = config.Data.Dataset == Dataset.Features;
        var format = vectors ? null : ImageFormat.For(config.Data);
        var inputs = vectors ? FeatureInputs(supportDir, queryDir) : ImageInputs(supportDir, queryDir, format!);
        var (classes, support, query) = (inputs.Classes, inputs.Support, inputs.Query);
        if (info.Head == HeadKind.PerWay && classes.Length != config.Data.Train.Ways)
            throw new ConfigException(
                $"{supportDir}: {classes.Length} classes, but this {info.Name} checkpoint's head has one output per way of its {config.Data.Train.Ways}-way training episodes; " +
                $"give it {config.Data.Train.Ways} classes, or train an algorithm that takes any number of classes at adaptation: {string.Join(", ", AlgorithmRegistry.All.Where(a => a.AnyTestWays).Select(a => a.Name))}");

        Experiment.ApplyProcessSettings(config);
        var plan = Experiment.PlanFor(config);
        var objective = Objective.For(config.Data.Dataset);
        using var scope = Torch.NewScope();
        var inputShape = vectors ? [inputs.Dim] : format!.InputShape;
        using var learner = info.Create(new AlgorithmContext(config.Algorithm, BuildModel(config, info, inputShape, checkpoint, plan.Device), objective, null, (ulong)config.Seed));
        checkpoint.LoadInto(learner.OuterParameterNames, learner.OuterParameters, file);

        var labels = support.SelectMany((c, j) => Enumerable.Repeat((long)j, c.Count)).ToArray();
        var supportX = inputs.SupportX().To(plan.Device);
        var supportY = Torch.From(labels, labels.Length).To(plan.Device);
        // Without a query the support stands in for it: a batch and its copy have the same
        // batch-norm statistics, so the adapted state is the support set's alone.
        var queryX = query == null ? supportX : inputs.QueryX!().To(plan.Device);
        var queryY = query == null ? supportY : Torch.Zeros([query.Count], ScalarType.Int64, plan.Device);
        var adapted = learner.AdaptTo(new Episode(supportX, supportY, queryX, queryY));

        var predictions = new List<Prediction>();
        double? accuracy = null;
        int[][]? confusion = null;
        if (query != null)
        {
            using var noGrad = Torch.NoGrad();
            var probs = F.Softmax(adapted.Logits, 1).To(Device.Cpu).To(ScalarType.Float64).ToArray<double>();
            var w = classes.Length;
            for (var i = 0; i < query.Count; i++)
            {
                var p = probs.AsSpan(i * w, w).ToArray();
                var best = 0;
                for (var c = 1; c < w; c++) if (p[c] > p[best]) best = c;
                var entropy = Calibration.Entropy(p);
                predictions.Add(new Prediction(query[i].Name, query[i].Truth, classes[best], p[best], p, entropy, entropy > uncertainAbove * Math.Log(w)));
            }
            if (query.All(q => q.Truth != null))
            {
                confusion = [.. classes.Select(_ => new int[w])];
                foreach (var p in predictions) confusion[Array.IndexOf(classes, p.Truth)][Array.IndexOf(classes, p.Predicted)]++;
                accuracy = predictions.Count(p => p.Truth == p.Predicted) / (double)predictions.Count;
            }
        }
        var result = new AdaptationResult(info.Name, Path.GetFullPath(file), classes, [.. support.Select(c => c.Count)],
            info.TakesTestSteps ? info.TestInnerSteps(config.Algorithm) : null, predictions, accuracy, confusion, clock.Elapsed.TotalSeconds) { UncertainAbove = uncertainAbove, Unit = vectors ? "examples" : "images" };
        if (saveAdapted != null) SaveAdapted(result, adapted.State, saveAdapted);
        return result;
    }

    /// <summary>The checkpoint's model on <paramref name="device"/>, its head as wide as the checkpoint's (the training ways or training classes).</summary>
    private static IModel BuildModel(RunConfig config, AlgorithmInfo info, long[] inputShape, Checkpoint checkpoint, Device device)
    {
        var outputs = info.Head == HeadKind.PerWay ? config.Data.Train.Ways : 1;
        var model = ModelFactory.Create(config, inputShape, outputs, device, (ulong)config.Seed);
        if (info.Head != HeadKind.PerTrainingClass) return model;
        // A baseline's head has one output per training class, a count of the training data the checkpoint records in the head's shape.
        var headName = model.ParameterNames[model.IndicesOf(ParameterRole.HeadWeight).Single()];
        model.Dispose();
        if (!checkpoint.Parameters.TryGetValue(headName, out var head)) throw new CheckpointException($"checkpoint has no '{headName}'");
        return ModelFactory.Create(config, inputShape, (int)head.Size(0), device, (ulong)config.Seed);
    }

    /// <summary>The support classes (label order) with their example counts, the query's examples, and the inputs as tensors on the CPU, read when asked for.</summary>
    private sealed record Inputs(string[] Classes, List<(string Name, int Count)> Support, List<QueryImage>? Query, long Dim, Func<Tensor> SupportX, Func<Tensor>? QueryX);

    private static Inputs ImageInputs(string supportDir, string? queryDir, ImageFormat format)
    {
        var support = ReadClassFolders(supportDir, "support");
        var classes = support.Select(c => c.Name).ToArray();
        var query = queryDir == null ? null : ReadQuery(queryDir, classes);
        var options = new DataOptions();
        var supportStore = FolderDataset.Decode([.. support.Select(c => c.Files)], format, options);
        var queryStore = query == null ? null : FolderDataset.Decode([query.Select(q => q.Path).ToArray()], format, options);
        Tensor Tensor(ImageStore store) => Torch.From(format.ToFloats(store, 0, store.ImageCount), store.ImageCount, format.Channels, format.Size, format.Size);
        return new Inputs(classes, [.. support.Select(c => (c.Name, c.Files.Length))], query, 0, () => Tensor(supportStore), queryStore == null ? null : () => Tensor(queryStore));
    }

    /// <summary>
    /// A features checkpoint adapts to a features file (CSV, NPY or safetensors, as data.root
    /// takes them): its rows are the support examples, its labels their classes (ordinal order).
    /// The query is another such file, its examples named "row N" (from 1); a row's label is its
    /// truth, or "?" where its class is not known (accuracy needs every row's).
    /// </summary>
    private static Inputs FeatureInputs(string supportFile, string? queryFile)
    {
        if (Directory.Exists(supportFile))
            throw new DataException($"{supportFile}: a features checkpoint adapts to a features file ({string.Join(", ", FeatureFiles.Extensions)}) with a label per row, not a folder");
        var support = FeatureFiles.Read(supportFile);
        var classes = support.Labels.Distinct().Order(StringComparer.Ordinal).ToArray();
        if (classes.Length < 2) throw new ConfigException($"{supportFile}: only one class ('{classes[0]}'); a classifier needs at least two");
        var order = Enumerable.Range(0, support.Rows).OrderBy(i => Array.IndexOf(classes, support.Labels[i])).ThenBy(i => i).ToArray();
        FeatureTable? query = null;
        if (queryFile != null)
        {
            query = FeatureFiles.Read(queryFile);
            if (query.Dim != support.Dim) throw new DataException($"{queryFile}: examples have {query.Dim} features, the support file's {support.Dim}");
        }
        if (query?.Labels.FirstOrDefault(l => l != Unlabelled && !classes.Contains(l)) is { } stranger)
            throw new DataException($"{queryFile}: query class '{stranger}' is not one of the support classes ({string.Join(", ", classes)}); label a row of unknown class '{Unlabelled}'");
        Tensor Rows(FeatureTable t, int[] rows) =>
            Torch.From([.. rows.SelectMany(i => t.Values.AsSpan(i * t.Dim, t.Dim).ToArray())], rows.Length, t.Dim);
        return new Inputs(classes, [.. classes.Select(c => (c, support.Labels.Count(l => l == c)))],
            query == null ? null : [.. Enumerable.Range(0, query.Rows).Select(i => new QueryImage("", $"row {i + 1}", query.Labels[i] == Unlabelled ? null : query.Labels[i]))],
            support.Dim, () => Rows(support, order), query == null ? null : () => Rows(query, [.. Enumerable.Range(0, query.Rows)]));
    }

    /// <summary>The label of a query row whose class is not known.</summary>
    public const string Unlabelled = "?";

    /// <summary>A folder of class subfolders, each with at least one image (class names: folder names, ordinal order).</summary>
    public static List<(string Name, string[] Files)> ReadClassFolders(string dir, string what)
    {
        if (!Directory.Exists(dir)) throw new DataException($"{dir}: {what} folder not found");
        var result = new List<(string, string[])>();
        foreach (var sub in FolderDataset.Subfolders(dir))
        {
            var c = FolderDataset.Read(Split.Test, Path.GetFileName(sub), sub);
            if (c.Files.Length == 0) throw new DataException($"{sub}: {what} class '{c.Name}' has no image (PNG or JPEG)");
            result.Add((c.Name, [.. c.Files.Select(f => Path.Combine(sub, f))]));
        }
        if (result.Count == 0) throw new DataException($"{dir}: no class subfolders (the {what} folder holds one subfolder of images per class, named after the class)");
        if (result.Count < 2) throw new ConfigException($"{dir}: only one class ('{result[0].Item1}'); a classifier needs at least two");
        return result;
    }

    private sealed record QueryImage(string Path, string Name, string? Truth);

    /// <summary>A flat folder of images (unlabelled), or class subfolders named like support classes (labelled).</summary>
    private static List<QueryImage> ReadQuery(string dir, string[] classes)
    {
        if (!Directory.Exists(dir)) throw new DataException($"{dir}: query folder not found");
        var flat = FolderDataset.Read(Split.Test, "", dir).Files;
        var subs = FolderDataset.Subfolders(dir);
        if (flat.Length > 0 && subs.Length > 0)
            throw new DataException($"{dir}: holds both images and subfolders; give either a flat folder of images or one subfolder per class");
        if (flat.Length > 0) return [.. flat.Select(f => new QueryImage(Path.Combine(dir, f), f, null))];
        var result = new List<QueryImage>();
        foreach (var sub in subs)
        {
            var name = Path.GetFileName(sub);
            if (!classes.Contains(name))
                throw new DataException($"{sub}: query class '{name}' is not one of the support classes ({string.Join(", ", classes)})");
            result.AddRange(FolderDataset.Read(Split.Test, name, sub).Files.Select(f => new QueryImage(Path.Combine(sub, f), $"{name}/{f}", name)));
        }
        if (result.Count == 0) throw new DataException($"{dir}: no query images (PNG or JPEG)");
        return result;
    }

    /// <summary>The predictions CSV and the JSON summary; a file that cannot be written is exit 5 naming it.</summary>
    public static void WriteResults(AdaptationResult result, string csvPath, string jsonPath)
    {
        foreach (var (path, write) in new (string, Action)[] { (csvPath, () => WriteCsv(result, csvPath)), (jsonPath, () => WriteJson(result, jsonPath)) })
        {
            try { write(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                var why = e is DirectoryNotFoundException ? "its folder does not exist" : e is UnauthorizedAccessException ? "permission denied" : e.Message;
                throw new MetaRunException(ExitCodes.IoProblem, $"{path}: cannot write the predictions ({why}); the result is printed above; write it elsewhere with --out FILE");
            }
        }
    }

    /// <summary>The predictions as CSV: image, predicted, probability, then one probability column per class (and truth when labelled), predictive entropy and the uncertain flag.</summary>
    public static void WriteCsv(AdaptationResult result, string path)
    {
        using var writer = new StreamWriter(path);
        using var csv = CsvWriter.Create(writer, new CsvWriterOptions(), true);
        var labelled = result.Accuracy != null;
        static string F(double v) => v.ToString("0.000000", CultureInfo.InvariantCulture);
        csv.WriteRecord(["image", "predicted", "probability", .. result.Classes, .. labelled ? new[] { "true" } : [], "entropy", "uncertain"]);
        foreach (var p in result.Predictions)
            csv.WriteRecord([p.Image, p.Predicted, F(p.Probability), .. p.Probabilities.Select(F), .. labelled ? new[] { p.Truth! } : [], F(p.Entropy), p.Uncertain ? "yes" : "no"]);
    }

    public static void WriteJson(AdaptationResult result, string path) =>
        File.WriteAllText(path, result.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>The adapted tensors as safetensors, with the class names (label order) and the algorithm in the metadata.</summary>
    private static void SaveAdapted(AdaptationResult result, IReadOnlyList<KeyValuePair<string, Tensor>> state, string path)
    {
        var metadata = new Dictionary<string, string>
        {
            ["classes"] = new JsonArray([.. result.Classes.Select(c => (JsonNode)c)]).ToJsonString(),
            ["algorithm"] = result.Algorithm,
            ["checkpoint"] = result.Checkpoint,
        };
        using var noGrad = Torch.NoGrad();
        Safetensors.Save(path, state.ToDictionary(kv => kv.Key, kv => kv.Value.Detach().To(Device.Cpu).Contiguous()), metadata);
    }
}
