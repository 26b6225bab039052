using MetaRun.Config;

namespace MetaRun.Data;

// Placeholder so the tree compiles; the data layer replaces it.
public static class TaskFamilies
{
    public static ITaskFamily Open(DataConfig data, string? dataRootOverride, long seed) =>
        throw new DataException($"data set '{data.Dataset}' is not available yet");
}
