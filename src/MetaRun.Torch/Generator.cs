using static LibTorch.Native;

namespace LibTorch;

/// <summary>
/// An independent libtorch random stream (Philox on CUDA, Mersenne Twister on CPU) whose state
/// can be saved in a checkpoint and restored, so a resumed run draws the same numbers.
/// </summary>
public sealed class Generator : IDisposable
{
    private IntPtr handle;

    public Generator(ulong seed, Device? device = null)
    {
        var d = device ?? Device.Cpu;
        handle = Check(mr_generator_new(seed, (int)d.Type, d.Index));
    }

    internal IntPtr Handle => handle != IntPtr.Zero ? handle : throw new ObjectDisposedException(nameof(Generator));

    /// <summary>The full state as a uint8 tensor.</summary>
    public Tensor GetState() => new(mr_generator_get_state(Handle));

    public void SetState(Tensor state) => Check(mr_generator_set_state(Handle, state.Handle));

    public void Dispose()
    {
        if (handle == IntPtr.Zero) return;
        mr_generator_free(handle);
        handle = IntPtr.Zero;
    }
}
