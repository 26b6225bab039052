namespace LibTorch;

/// <summary>
/// Owns every tensor created on this thread while it is the innermost open scope, and frees them
/// all when disposed, so loops keep flat native memory without the garbage collector. A tensor
/// that must outlive the scope is moved out with <see cref="Tensor.MoveToOuterScope"/> or
/// <see cref="Tensor.DetachFromScope"/>.
/// </summary>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static DisposeScope? current;

    private readonly List<Tensor> owned = new();
    private bool disposed;

    internal DisposeScope()
    {
        Parent = current;
        current = this;
    }

    internal static DisposeScope? Current => current;

    public DisposeScope? Parent { get; }

    /// <summary>Tensors currently owned by this scope (not counting ones already freed or moved).</summary>
    public int Count => owned.Count(t => t.Scope == this && !t.IsDisposed);

    internal void Attach(Tensor t)
    {
        if (disposed) throw new ObjectDisposedException(nameof(DisposeScope));
        t.Scope = this;
        owned.Add(t);
    }

    /// <summary>Takes ownership of tensors created elsewhere (another thread, or no scope).</summary>
    public Tensor Include(Tensor tensor)
    {
        tensor.Scope = null;
        Attach(tensor);
        return tensor;
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var t in owned)
        {
            if (t.Scope != this) continue;
            t.Scope = null;
            t.Dispose();
        }
        owned.Clear();
        // Scopes nest; closing one out of order still restores its nearest open ancestor for this thread
        // (never a scope already disposed, which would refuse every tensor created afterwards).
        if (current == this) current = NearestOpen(Parent);
    }

    /// <summary>The scope itself if still open, else its nearest open ancestor, else null.</summary>
    internal static DisposeScope? NearestOpen(DisposeScope? scope)
    {
        while (scope is { disposed: true }) scope = scope.Parent;
        return scope;
    }
}
