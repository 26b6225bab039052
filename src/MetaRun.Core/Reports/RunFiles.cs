namespace MetaRun.Reports;

/// <summary>
/// Where a run folder keeps its files, as sweep, compare, report and curves read and write them.
/// The one place in Sweeps/Reports that spells run-folder paths, so moving to the shared
/// run-directory type is a change to this file alone.
/// </summary>
internal static class RunFiles
{
    public static string Config(string runDir) => Path.Combine(runDir, "config.yaml");
    public static string MetricsCsv(string runDir) => Path.Combine(runDir, "metrics.csv");
    public static string TrainLog(string runDir) => Path.Combine(runDir, "train.log");
    public static string LastCheckpoint(string runDir) => Path.Combine(runDir, "checkpoints", "last.safetensors");
    public static string BestCheckpoint(string runDir) => Path.Combine(runDir, "checkpoints", "best.safetensors");
    /// <summary>metarun eval writes its result beside the checkpoint it evaluated.</summary>
    public static string Eval(string runDir) => Path.Combine(runDir, "checkpoints", "eval.json");
    public static string Curves(string runDir) => Path.Combine(runDir, "curves.png");

    public static bool IsRun(string dir) => File.Exists(Config(dir));
}
