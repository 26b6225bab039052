using LibTorch;

namespace MetaRun.Tests.LibTorch;

/// <summary>Scope ownership: what a scope frees, what outlives it, and how nested scopes hand tensors on.</summary>
[Collection(TorchSerialCollection.Name)]
public sealed class DisposeScopeTests
{
    [Fact]
    public void DisposingAScopeFreesItsTensors()
    {
        var before = Torch.LiveTensors;
        Tensor kept;
        using (var scope = Torch.NewScope())
        {
            var a = Torch.Ones([3]);
            var b = a * 2 + 1;
            kept = b;
            Assert.Equal(before + 3, Torch.LiveTensors);
            Assert.Equal(3, scope.Count);
            a.Dispose(); // disposing early is fine
            Assert.Equal(before + 2, Torch.LiveTensors);
            Assert.Equal(2, scope.Count);
        }
        Assert.Equal(before, Torch.LiveTensors);
        Assert.True(kept.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => kept.Sum());
    }

    [Fact]
    public void MoveToOuterScopeKeepsATensorAlivePastItsScope()
    {
        var before = Torch.LiveTensors;
        Tensor result;
        using (var outer = Torch.NewScope())
        {
            using (var inner = Torch.NewScope())
            {
                var t = Torch.Ones([2]) * 3;
                result = t.MoveToOuterScope();
                Assert.Same(t, result);
                Assert.Equal(1, inner.Count); // the Ones temporary
                Assert.Equal(1, outer.Count);
            }
            Assert.False(result.IsDisposed);
            Assert.Equal([3.0f, 3.0f], result.ToArray<float>());
            Assert.Equal(before + 1, Torch.LiveTensors);
        }
        Assert.True(result.IsDisposed);
        Assert.Equal(before, Torch.LiveTensors);

        // From the outermost scope it leaves scopes entirely: the caller owns it.
        Tensor owned;
        using (Torch.NewScope()) owned = Torch.Zeros([1]).MoveToOuterScope();
        Assert.False(owned.IsDisposed);
        owned.Dispose();

        Tensor detached;
        using (Torch.NewScope()) detached = Torch.Zeros([1]).DetachFromScope();
        Assert.False(detached.IsDisposed);
        detached.Dispose();
        Assert.Equal(before, Torch.LiveTensors);

        // Include adopts a tensor that has no scope.
        var loose = Torch.Zeros([1]);
        using (var s = Torch.NewScope()) Assert.Same(loose, s.Include(loose));
        Assert.True(loose.IsDisposed);
        Assert.Equal(before, Torch.LiveTensors);
    }

    [Fact]
    public void NestedScopesOwnWhatIsCreatedWhileTheyAreInnermost()
    {
        var before = Torch.LiveTensors;
        using (var outer = Torch.NewScope())
        {
            var a = Torch.Zeros([1]);
            Tensor b;
            using (var inner = Torch.NewScope())
            {
                Assert.Same(outer, inner.Parent);
                b = Torch.Zeros([1]);
                Assert.Equal(1, inner.Count);
                Assert.Equal(1, outer.Count);
            }
            Assert.True(b.IsDisposed);
            Assert.False(a.IsDisposed);
            var c = Torch.Zeros([1]); // the outer scope is current again
            Assert.Equal(2, outer.Count);
            Assert.Equal(before + 2, Torch.LiveTensors);
            _ = c;
        }
        Assert.Equal(before, Torch.LiveTensors);
    }

    [Fact]
    public void ScopesClosedOutOfOrderLeaveNoDisposedScopeCurrent()
    {
        var before = Torch.LiveTensors;
        var outer = Torch.NewScope();
        var a = Torch.Zeros([1]);
        var inner = Torch.NewScope();
        var b = Torch.Zeros([1]);
        outer.Dispose();
        Assert.True(a.IsDisposed);
        Assert.False(b.IsDisposed);
        var c = Torch.Zeros([1]); // the inner scope is still open and current
        var moved = Torch.Zeros([1]).MoveToOuterScope(); // its parent is closed: the caller owns it
        inner.Dispose();
        Assert.True(b.IsDisposed);
        Assert.True(c.IsDisposed);
        Assert.False(moved.IsDisposed);
        moved.Dispose();
        Assert.Equal(before, Torch.LiveTensors);

        // With both closed there is no scope: a new tensor is the caller's, not attached to a dead scope.
        var d = Torch.Zeros([1]);
        Assert.False(d.IsDisposed);
        d.Dispose();
        Assert.Equal(before, Torch.LiveTensors);
    }
}
