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
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            f.Write(bytes);
            f.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
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
            var inv = CultureInfo.InvariantCulture;
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
                ConfigHash = Meta("config_hash"),
                Iteration = long.Parse(Meta("iteration"), inv),
                ValidationAccuracy = tf.Metadata.TryGetValue("val_accuracy", out var a) ? double.Parse(a, inv) : null,
                ValidationLoss = tf.Metadata.TryGetValue("val_loss", out var l) ? double.Parse(l, inv) : null,
                Parameters = p,
                OptimizerState = o,
            };
        }
        catch
        {
            tf.Dispose();
            throw;
        }
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
            throw new CheckpointException($"{source}: the checkpoint was trained with a different config (hash {was}, now {now}); only name, output, algorithm.iterations, eval, checkpoint and execution may change on resume");
    }

    /// <summary>Copies the saved weights into the model's parameters, checking names and shapes.</summary>
    public void LoadInto(IReadOnlyList<string> names, IReadOnlyList<Tensor> parameters, string source)
    {
        using var noGrad = Torch.NoGrad();
        for (var i = 0; i < names.Count; i++)
        {
            if (!Parameters.TryGetValue(names[i], out var saved)) throw new CheckpointException($"{source}: parameter '{names[i]}' is missing");
            if (!saved.Shape.SequenceEqual(parameters[i].Shape))
                throw new CheckpointException($"{source}: parameter '{names[i]}' has shape [{string.Join(", ", saved.Shape)}], the model expects [{string.Join(", ", parameters[i].Shape)}]");
            parameters[i].CopyFrom(saved);
        }
    }

    public void Dispose()
    {
        foreach (var t in Parameters.Values.Concat(OptimizerState.Values)) t.Dispose();
    }
}
