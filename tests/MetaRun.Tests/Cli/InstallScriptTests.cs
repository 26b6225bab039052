using System.Diagnostics;

namespace MetaRun.Tests.Cli;

/// <summary>
/// The bundle's install.sh picks its libtorch: an active Python whose PyTorch has no CMake files
/// (Debian's python3-torch, some conda builds) is passed over for Debian's libtorch-dev, and the
/// script says which it took and why.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class InstallScriptTests
{
    [Fact]
    public async Task APyTorchWithoutCMakeFilesFallsThroughToDebiansLibtorch()
    {
        Assert.True(File.Exists("/usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake"), "this test needs Debian's libtorch-dev (scripts/setup.sh installs it)");
        var dir = TestPaths.NewTempDir("install");
        // The script alone, without the bundle's native/ sources: it gets as far as choosing its libtorch, then CMake stops.
        File.Copy(Path.Combine(TestPaths.RepoRoot, "scripts", "bundle", "install.sh"), Path.Combine(dir, "install.sh"));
        var bin = Directory.CreateDirectory(Path.Combine(dir, "fakebin")).FullName;
        var python = Path.Combine(bin, "python3");
        File.WriteAllText(python, $"""
            #!/bin/sh
            case "$2" in
              *cmake_prefix_path*) echo {dir}/no-cmake-here ;;
              *__version__*) echo 2.6.0 ;;
            esac
            exit 0
            """.Replace("\r", ""));
        File.SetUnixFileMode(python, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var psi = new ProcessStartInfo("bash", [Path.Combine(dir, "install.sh")]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = dir };
        psi.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
        psi.Environment.Remove("METARUN_LIBTORCH");
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(120)), "install.sh did not finish");
        var text = await output + await err;
        Assert.Contains($"the PyTorch of {python} has no CMake files", text);
        Assert.Contains("building the native library against Debian's libtorch-dev", text);
        Assert.DoesNotContain("no libtorch under", text);
    }
}
