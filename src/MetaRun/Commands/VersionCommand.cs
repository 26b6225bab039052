using System.CommandLine;
using System.CommandLine.Invocation;
using System.Reflection;
using LibTorch;

namespace MetaRun.Cli.Commands;

/// <summary>--version prints MetaRun's version and the libtorch it runs on.</summary>
public static class VersionCommand
{
    public static string Text()
    {
        var version = typeof(VersionCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        var plus = version.IndexOf('+');
        if (plus > 0) version = version[..plus];
        var gpus = Torch.CudaDeviceCount;
        var build = gpus > 0 ? $"CUDA, {gpus} GPU{(gpus == 1 ? "" : "s")}" : Torch.CudaBuilt ? "CUDA, no GPU visible" : "CPU";
        return $"metarun {version}\nlibtorch {Torch.LibTorchVersion} ({build}), {Torch.Threads} intra-op threads";
    }

    public static void ReplaceDefault(RootCommand root)
    {
        var option = root.Options.OfType<VersionOption>().First();
        option.Action = new PrintVersion();
    }

    private sealed class PrintVersion : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            Console.WriteLine(Text());
            return 0;
        }
    }
}
