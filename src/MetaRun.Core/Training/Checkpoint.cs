using System.Globalization;
using LibTorch;
using MetaRun.Config;

namespace MetaRun.Training;

/// <summary>
/// A training checkpoint: one safetensors file holding the outer parameters ("param.NAME"), the
/// outer optimizer's state ("optim.KEY") and, as metadata, the fully resolved config, its hash,
/// the iteration and the episode counter (the sampler's whole random state: episode i is a pure
/// function of the seed and i). It opens in Python's safetensors.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private const string ParamPrefix = "param.";
    private const string OptimPrefix = "optim.";

    public required RunConfig Config { get; init; }
    public required string ConfigHash { get; init; }
    public required long Iteration { get; init; }
    public double? ValidationAccuracy { get; init; }
    public double? ValidationLoss { get; init; }
    public required IReadOnlyDictionary<string, Tensor> Parameters { get; init; }
    public required IReadOnlyDictionary<string, Tensor> OptimizerState { get; init; }
    /// <summary>The file it was read from (a run folder's "last"/"best" resolved); empty for one not read from a file.</summary>
    public string FilePath { get; init; } = "";

    /// <summary>Writes atomically: a temporary file, flushed to disk, then renamed over the target.</summary>
    public void Save(string path, int metaBatchSize)
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (k, v) in Parameters) tensors[ParamPrefix + k] = v;
        foreach (var (k, v) in OptimizerState) tensors[OptimPrefix + k] = v;
        var inv = CultureInfo.InvariantCulture;
        var meta = new Dictionary<string, string>
        {
            ["format"] = "metarun-checkpoint-1",
            ["config"] = ConfigLoader.ToYaml(Config),
            ["config_hash"] = ConfigHash,
            ["iteration"] = Iteration.ToString(inv),
            ["episode_counter"] = (Iteration * metaBatchSize).ToString(inv),
        };
        if (ValidationAccuracy is { } acc) meta["val_accuracy"] = acc.ToString("R", inv);
        if (ValidationLoss is { } loss) meta["val_loss"] = loss.ToString("R", inv);
        var bytes = Safetensors.Serialize(tensors, meta);
        var tmp = path + ".tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                f.Write(bytes);
                f.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A full disk leaves a partial (often 0-byte) .tmp; the previous checkpoint is untouched.
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new MetaRunException(ExitCodes.IoProblem, $"{path}: cannot write the checkpoint ({e.Message}); the previous one, if any, is intact", e);
        }
    }

    /// <summary>Reads a checkpoint file, or the "last"/"best" checkpoint of a run folder.</summary>
    public static Checkpoint Load(string path)
    {
        var file = RunDirectory.ResolveCheckpoint(path);
        TensorFile tf;
        try
        {
            tf = Safetensors.Load(file);
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointException(e.Message, e);
        }
        try
        {
            string Meta(string key) => tf.Metadata.TryGetValue(key, out var v) ? v : throw new CheckpointException($"{file}: not a MetaRun checkpoint (metadata '{key}' missing)");
            if (Meta("format") != "metarun-checkpoint-1") throw new CheckpointException($"{file}: unsupported checkpoint format '{Meta("format")}'");
            RunConfig config;
            try { config = ConfigLoader.ParseResolved(Meta("config"), $"{file} (embedded config)"); }
            catch (ConfigException e) { throw new CheckpointException(e.Message); }
            // Only its form: the hash is recomputed from the embedded config when it matters (CheckSameTraining).
            var hash = Meta("config_hash");
            if (hash.Length != 16 || !hash.All(char.IsAsciiHexDigitLower))
                throw new CheckpointException($"{file}: metadata 'config_hash' is '{Shorten(hash)}'; expected 16 lowercase hex digits");
            var iteration = Integer(file, tf.Metadata, "iteration", 1, config.Algorithm.Iterations);
            var episodes = Integer(file, tf.Metadata, "episode_counter", 0, long.MaxValue);
            if (episodes != iteration * config.Algorithm.MetaBatchSize)
                throw new CheckpointException($"{file}: metadata 'episode_counter' is {episodes}, but iteration {iteration} × algorithm.meta_batch_size {config.Algorithm.MetaBatchSize} is {iteration * config.Algorithm.MetaBatchSize}; the file was edited or damaged");
            var p = new Dictionary<string, Tensor>();
            var o = new Dictionary<string, Tensor>();
            foreach (var (k, v) in tf.Tensors)
            {
                if (k.StartsWith(ParamPrefix, StringComparison.Ordinal)) p[k[ParamPrefix.Length..]] = v;
                else if (k.StartsWith(OptimPrefix, StringComparison.Ordinal)) o[k[OptimPrefix.Length..]] = v;
                else v.Dispose();
            }
            return new Checkpoint
            {
                Config = config,
                ConfigHash = hash,
                Iteration = iteration,
                // Regression has no accuracy; checkpoints before this check stored it as NaN.
                ValidationAccuracy = Number(file, tf.Metadata, "val_accuracy", 0, 1, allowNaN: config.Data.IsRegression),
                ValidationLoss = Number(file, tf.Metadata, "val_loss", 0, double.MaxValue),
                Parameters = p,
                OptimizerState = o,
                FilePath = file,
            };
        }
        catch
        {
            tf.Dispose();
            throw;
        }
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";

    /// <summary>An integer metadata field within [min, max]; anything else names the file and the field.</summary>
    private static long Integer(string file, IReadOnlyDictionary<string, string> meta, string key, long min, long max)
    {
        if (!meta.TryGetValue(key, out var text)) throw new CheckpointException($"{file}: not a MetaRun checkpoint (metadata '{key}' missing)");
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
            throw new CheckpointException($"{file}: metadata '{key}' is '{Shorten(text)}'; expected an integer from {min} to {max}");
        return v;
    }

    /// <summary>An optional finite number within [min, max].</summary>
    private static double? Number(string file, IReadOnlyDictionary<string, string> meta, string key, double min, double max, bool allowNaN = false)
    {
        if (!meta.TryGetValue(key, out var text) || (allowNaN && text == "NaN")) return null;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v) || v < min || v > max)
            throw new CheckpointException($"{file}: metadata '{key}' is '{Shorten(text)}'; expected a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}");
        return v;
    }

    /// <summary>Refuses to continue training from this checkpoint under a config that would train differently.</summary>
    /// <remarks>
    /// Both hashes are computed now, from the embedded config and the new one, rather than
    /// trusting the stored hash: a key added to MetaRun since the checkpoint was written then
    /// takes its default on both sides instead of making every older checkpoint "different".
    /// </remarks>
    public void CheckSameTraining(RunConfig config, string source)
    {
        var (was, now) = (ConfigLoader.Hash(Config), ConfigLoader.Hash(config));
        if (was != now)
            throw new CheckpointException($"{source}: the checkpoint was trained with a different config (hash {was}, now {now}); only algorithm.iterations, eval.interval, checkpoint.interval, distributed.timeout, workers, threads and execution may change on resume");
    }

    /// <summary>Copies the saved weights into the model's parameters, checking names, shapes and dtypes.</summary>
    public void LoadInto(IReadOnlyList<string> names, IReadOnlyList<Tensor> parameters, string source)
    {
        // Everything is checked before anything is copied: a refused checkpoint leaves the model as it was.
        CheckFits(names, parameters, source);
        using var noGrad = Torch.NoGrad();
        for (var i = 0; i < names.Count; i++) parameters[i].CopyFrom(Parameters[names[i]]);
    }

    /// <summary>Checks that the saved weights fit the model (names, shapes, dtypes) without copying them.</summary>
    public void CheckFits(IReadOnlyList<string> names, IReadOnlyList<Tensor> parameters, string source)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (!Parameters.TryGetValue(names[i], out var saved)) throw new CheckpointException($"{source}: parameter '{names[i]}' is missing");
            CheckLike(source, $"parameter '{names[i]}'", saved, parameters[i]);
        }
        if (Parameters.Keys.FirstOrDefault(k => !names.Contains(k)) is { } extra)
            throw new CheckpointException($"{source}: parameter '{extra}' is not one of the model's ({Parameters.Count} saved, the model has {names.Count})");
    }

    /// <summary>
    /// Restores the outer optimizer's state, checked against the parameters first: a copy would
    /// silently convert a relabelled dtype and broadcast a wrong shape.
    /// </summary>
    public void LoadOptimizerInto(Optimizer optimizer, string source)
    {
        using (var fresh = Torch.NewScope())
        {
            foreach (var (key, expected) in optimizer.StateDict())
            {
                if (!OptimizerState.TryGetValue(key, out var saved)) throw new CheckpointException($"{source}: optimizer state '{key}' is missing");
                CheckLike(source, $"optimizer state '{key}'", saved, expected);
            }
        }
        if (OptimizerState.TryGetValue("step", out var step))
        {
            var n = (long)step.Item();
            if (n < 0 || n > Iteration) throw new CheckpointException($"{source}: optimizer state 'step' is {n}; expected 0 to the checkpoint's iteration {Iteration}");
        }
        try { optimizer.LoadStateDict(OptimizerState); }
        catch (InvalidDataException e) { throw new CheckpointException($"{source}: {e.Message}", e); }
    }

    private static void CheckLike(string source, string what, Tensor saved, Tensor expected)
    {
        if (!saved.Shape.SequenceEqual(expected.Shape))
            throw new CheckpointException($"{source}: {what} has shape [{string.Join(", ", saved.Shape)}], the model expects [{string.Join(", ", expected.Shape)}]");
        if (saved.DType != expected.DType)
            throw new CheckpointException($"{source}: {what} has dtype {saved.DType}, the model expects {expected.DType}");
    }

    public void Dispose()
    {
        foreach (var t in Parameters.Values.Concat(OptimizerState.Values)) t.Dispose();
    }
}
