using System.Runtime.InteropServices;

namespace MetaRun.Cli;

/// <summary>
/// SIGINT or SIGTERM during a command that saves nothing on the way (eval, adapt): one line saying
/// what was stopped and that nothing was written, then exit 130 or 143, instead of a silent exit.
/// </summary>
public sealed class Interruption : IDisposable
{
    private readonly PosixSignalRegistration[] registrations;

    private Interruption(string what)
    {
        registrations = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM }.Select(signal => PosixSignalRegistration.Create(signal, c =>
        {
            c.Cancel = true;
            var (name, code) = c.Signal == PosixSignal.SIGINT ? ("interrupted (SIGINT)", 130) : ("terminated (SIGTERM)", 143);
            Console.Error.WriteLine($"metarun: {name} during {what}; nothing was written, run it again for the result");
            ExitNow.With(code);
        }))];
    }

    public static Interruption During(string what) => new(what);

    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
    }
}
