namespace LibTorch;

/// <summary>An error raised inside libtorch or the native layer, with libtorch's own message.</summary>
public sealed class TorchException(string message) : Exception(message);
