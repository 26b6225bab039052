using LibTorch;
using static MetaRun.Tests.LibTorch.TestSupport;

namespace MetaRun.Tests.LibTorch;

/// <summary>Failures inside libtorch surface as exceptions with libtorch's text, and the process goes on.</summary>
public sealed class TorchExceptionTests
{
    [Fact]
    public void MatmulShapeMismatchIsATorchExceptionWithLibtorchsMessage()
    {
        using var scope = Torch.NewScope();
        var a = Torch.Ones([2, 3], ScalarType.Float64);
        var b = Torch.Ones([4, 5], ScalarType.Float64);
        var e = Assert.Throws<TorchException>(() => a.MatMul(b));
        // libtorch 1.13: "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"
        Assert.Contains("shapes cannot be multiplied", e.Message);
        Assert.Contains("2x3 and 4x5", e.Message);
        Assert.DoesNotContain("Exception raised from", e.Message); // no C++ backtrace

        // The process keeps working, and a later failure reports its own message, not a stale one.
        var c = a.MatMul(Torch.Ones([3, 2], ScalarType.Float64));
        Assert.Equal([3.0, 3.0, 3.0, 3.0], c.D());
        var e2 = Assert.Throws<TorchException>(() => a.View(5));
        Assert.DoesNotContain("cannot be multiplied", e2.Message);
        Assert.Contains("invalid for input of size 6", e2.Message);
        Assert.Equal(6.0, (a + a).Sum().Item() / 2);
    }

    [Fact]
    public void OtherNativeFailuresAreTorchExceptions()
    {
        using var scope = Torch.NewScope();
        var x = Torch.Zeros([2, 3]);
        Assert.Throws<TorchException>(() => x.Item());                       // more than one element
        Assert.Throws<TorchException>(() => x.Transpose(0, 5));             // dimension out of range
        Assert.Throws<TorchException>(() => Torch.Cat([x, Torch.Zeros([2, 2, 2])]));
        Assert.Throws<TorchException>(() => Torch.Grad(x.Sum(), x));        // x does not require grad
        Assert.Throws<TorchException>(() => Torch.From(new float[] { 1, 2, 3 }, 2, 2));
        Assert.Throws<TorchException>(() => F.CrossEntropy(Torch.Zeros([2, 3]), Torch.From(new long[] { 0, 7 })));
        // A two-output op fails as one: the hidden state's width does not match w_hh.
        Assert.Throws<TorchException>(() => F.LstmCell(Torch.Zeros([1, 2]), Torch.Zeros([1, 4]), Torch.Zeros([1, 3]), Torch.Zeros([12, 2]), Torch.Zeros([12, 3])));
        Assert.Throws<TorchException>(() => F.CausalConv1d(Torch.Zeros([1, 2, 5]), Torch.Zeros([3, 2, 2]), dilation: 0));
        Assert.Throws<TorchException>(() => F.MaskedSoftmax(x, Torch.Zeros([2, 3]), 1));   // the mask is not bool
        Assert.Equal(0.0, x.Sum().Item());
    }

    [Fact]
    public void EachThreadSeesItsOwnErrorMessage()
    {
        // The native layer keeps the last error per thread: concurrent failures never swap messages.
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        void Run(bool matmul)
        {
            using var scope = Torch.NewScope();
            var a = Torch.Ones([2, 3]);
            for (var i = 0; i < 20; i++)
            {
                var e = Assert.Throws<TorchException>(() => matmul ? a.MatMul(a) : a.View(7));
                var expected = matmul ? "cannot be multiplied" : "invalid for input of size 6";
                if (!e.Message.Contains(expected)) failures.Add(e.Message);
                _ = a + 1; // a success in between clears nothing another thread relies on
            }
        }
        var threads = new[] { true, false, true, false }.Select(m => new Thread(() => Run(m))).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        Assert.Empty(failures);
    }

    [Fact]
    public void UsingADisposedTensorThrowsObjectDisposedException()
    {
        var t = Torch.Ones([2, 2]);
        t.Dispose();
        Assert.True(t.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => t.ToArray<float>());
        Assert.Throws<ObjectDisposedException>(() => t.Sum());
        Assert.Throws<ObjectDisposedException>(() => t + 1);
        Assert.Throws<ObjectDisposedException>(() => t.DType);
        using var other = Torch.Ones([2, 2]);
        Assert.Throws<ObjectDisposedException>(() => other + t);
        t.Dispose(); // a second Dispose is harmless

        var g = new Generator(1);
        g.Dispose();
        Assert.Throws<ObjectDisposedException>(() => g.GetState());
    }

    [Fact]
    public void AskingForCUDAOnACPUOnlyLibtorchIsATorchExceptionMentioningCUDA()
    {
        using var scope = Torch.NewScope();
        if (Torch.CudaAvailable)
        {
            // A CUDA libtorch with a GPU: the same calls must simply work.
            Assert.Equal(DeviceType.Cuda, Torch.Zeros([2], device: Device.Cuda()).Device.Type);
            return;
        }
        Assert.Equal(0, Torch.CudaDeviceCount);
        var e = Assert.Throws<TorchException>(() => Torch.Zeros([2], device: Device.Cuda()));
        Assert.Contains("CUDA", e.Message);
        Assert.Contains("CUDA", Assert.Throws<TorchException>(() => Torch.Randn([2], device: Device.Cuda())).Message);
        Assert.Contains("CUDA", Assert.Throws<TorchException>(() => Torch.Ones([2]).To(Device.Cuda())).Message);
        Assert.Contains("CUDA", Assert.Throws<TorchException>(() => new Generator(1, Device.Cuda())).Message);
        Assert.Equal(2.0, Torch.Ones([2]).Sum().Item());
    }
}
