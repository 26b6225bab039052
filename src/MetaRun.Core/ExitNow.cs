using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace MetaRun;

/// <summary>
/// Ends the process at once with an exit code, for a second Ctrl-C or SIGTERM ("stop now"), while
/// task workers may still be inside libtorch. Environment.Exit runs the C and C++ exit handlers,
/// libtorch's static destructors among them (its thread pools, allocators, registries), under
/// those running threads: the process then died with SIGSEGV instead of the documented 130 or 143.
/// _exit(2) skips them. Nothing to keep is lost: checkpoints are renamed into place whole, the
/// log is written line by line and standard error is unbuffered; what is dropped (metrics rows
/// after the last checkpoint) a resume drops too.
/// </summary>
public static class ExitNow
{
    [DllImport("libc", EntryPoint = "_exit")]
    [DoesNotReturn]
    private static extern void Exit(int status);

    [DoesNotReturn]
    public static void With(int code)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        Exit(code);
    }
}
