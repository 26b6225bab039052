namespace MetaRun.Models;

/// <summary>
/// Marks the forward passes on this thread whose graph is differentiated at most once (no
/// create_graph through them): a first-order inner step, any query pass, a pass without
/// gradients. Inside one, a model may take ops whose backward has no backward of its own
/// (conv4's blocked convolution stack); outside, every op stays twice differentiable, as MAML's
/// second order needs. Per thread, as a task's passes run on one worker.
/// </summary>
public static class FirstOrderPasses
{
    [ThreadStatic] private static int depth;

    public static bool Active => depth > 0;

    /// <summary>Passes until the scope is disposed are first order (when <paramref name="firstOrder"/>; otherwise nothing changes).</summary>
    public static Scope Enter(bool firstOrder = true)
    {
        if (firstOrder) depth++;
        return new Scope(firstOrder);
    }

    public readonly struct Scope(bool entered) : IDisposable
    {
        public void Dispose()
        {
            if (entered) depth--;
        }
    }
}
