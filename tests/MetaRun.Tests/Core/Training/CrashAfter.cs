using MetaRun.Training;

namespace MetaRun.Tests.Training;

/// <summary>A trainer observer that throws once iteration N is done: a crash between checkpoints.</summary>
internal sealed class CrashAfter(long iteration) : ITrainingObserver
{
    public void Started(long startIteration, long totalIterations) { }
    public void Validated(MetricsRow row, bool best) { }

    public void Iteration(MetricsRow row)
    {
        if (row.Iteration == iteration) throw new InvalidOperationException("simulated crash");
    }
}
