using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace MetaRun.Tests.Scripts;

/// <summary>
/// The portable bundle end to end, as on a GPU box without .NET: scripts/package.sh makes it, it is
/// unpacked in a temporary folder, and install.sh and the bundle's metarun run with .NET hidden
/// (a private mount namespace with an empty folder over the .NET installation where that is allowed,
/// and always a PATH without dotnet) and HOME pointed elsewhere.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class BundleTests(ITestOutputHelper log)
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(8);

    [Fact]
    public void BundleInstallsTrainsAndEvaluatesWithoutDotnet()
    {
        var clock = Stopwatch.StartNew();
        var tmp = TestPaths.NewTempDir("bundle");
        var (code, output) = Sh(Path.Combine(TestPaths.RepoRoot, "scripts", "package.sh"), TestPaths.RepoRoot, null);
        Assert.True(code == 0, output);
        var archive = output.Split('\n').Select(l => l.Trim()).Single(l => l.EndsWith("-linux-x64.tar.gz"));
        log.WriteLine($"package: {clock.Elapsed.TotalSeconds:F0} s");
        Assert.Equal(0, Sh($"tar -xzf '{archive}' -C '{tmp}'", tmp, null).Code);
        var box = Path.Combine(tmp, Path.GetFileName(archive)[..^".tar.gz".Length]);
        var home = Directory.CreateDirectory(Path.Combine(tmp, "home")).FullName;
        var hidden = HideDotnet(tmp);
        (int Code, string Output) Box(string command) => Sh(command, box, new Dictionary<string, string> { ["HOME"] = home }, hidden);

        var dotnet = Box("command -v dotnet");
        Assert.True(dotnet.Code != 0, "dotnet is still reachable: " + dotnet.Output);
        var before = Box("./metarun --version");
        Assert.Equal(10, before.Code);
        Assert.Contains("run " + box + "/install.sh first", before.Output);

        // Mismatches stop with one message saying what to do, before any build.
        var noTorch = Box($"METARUN_LIBTORCH='{tmp}/none' ./install.sh");
        Assert.Equal(10, noTorch.Code);
        Assert.Contains("holds no libtorch", noTorch.Output);
        var oldGcc = Path.Combine(tmp, "g++-7");
        File.WriteAllText(oldGcc, "#!/bin/sh\n[ \"$1\" = -dumpversion ] && echo 7.5.0 || echo 'g++ (GCC) 7.5.0'\n");
        File.SetUnixFileMode(oldGcc, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        var tooOld = Box($"CXX='{oldGcc}' ./install.sh");
        Assert.Equal(10, tooOld.Code);
        Assert.Contains("too old for libtorch", tooOld.Output);

        // Missing libpng headers, hidden in the private mount namespace where there is one (never
        // outside it: that would hide them from the whole machine).
        var noPng = Box($"[ \"${{METARUN_TEST_PRIVATE_MOUNTS:-}}\" = 1 ] || exit 99; mount --bind '{tmp}/empty' /usr/include/libpng16 && ./install.sh");
        if (noPng.Code != 99)
        {
            Assert.Equal(10, noPng.Code);
            Assert.Contains("development files (headers) of libpng are missing", noPng.Output);
            Assert.Contains("sudo apt-get install libpng-dev", noPng.Output);
            Assert.Contains("conda install -c conda-forge libpng", noPng.Output);
        }

        // The GPU-box path: the active Python's PyTorch. No PyTorch can be installed here (no PyPI),
        // so a stand-in python3 first on PATH answers install.sh's two questions with Debian's libtorch.
        var python = Directory.CreateDirectory(Path.Combine(tmp, "python")).FullName;
        File.WriteAllText(Path.Combine(python, "python3"), """
            #!/bin/sh
            case "$2" in
              *cmake_prefix_path*) echo /usr/lib/x86_64-linux-gnu/cmake ;;
              *__version__*) echo 1.13.1-stand-in ;;
              *) exit 1 ;;
            esac
            """);
        File.SetUnixFileMode(Path.Combine(python, "python3"), UnixFileMode.UserRead | UnixFileMode.UserExecute);
        var install = Box($"PATH='{python}':$PATH ./install.sh");
        Assert.True(install.Code == 0, install.Output);
        Assert.Contains($"the PyTorch of {python}/python3 (1.13.1-stand-in)", install.Output);
        Assert.Contains("this libtorch is CPU-only", install.Output);

        log.WriteLine($"install: {clock.Elapsed.TotalSeconds:F0} s");
        var train = Box("./metarun train configs/sinusoid/maml.yaml --set algorithm.iterations=20 --set eval.interval=10 " +
                        "--set eval.episodes=20 --set checkpoint.interval=10 --out run");
        Assert.True(train.Code == 0, train.Output);
        Assert.True(File.Exists(Path.Combine(box, "run", "checkpoints", "best.safetensors")), train.Output);
        var eval = Box("./metarun eval --checkpoint run --episodes 50");
        Assert.True(eval.Code == 0, eval.Output);
        var result = JsonNode.Parse(File.ReadAllText(Path.Combine(box, "run", "checkpoints", "eval.json")))!;
        Assert.Equal(50, result["episodes"]!.GetValue<int>());

        // bench writes its JSON by reflection, which trimming turns off unless told otherwise.
        var bench = Box("./metarun bench configs/sinusoid/maml.yaml --iterations 2 --warmup 1 --out bench.json");
        Assert.True(bench.Code == 0, bench.Output);
        Assert.True(File.Exists(Path.Combine(box, "bench.json")));
        var ops = Box("./metarun check ops --device cpu");
        Assert.True(ops.Code == 0, ops.Output);
        var cuda = Box("./metarun train configs/sinusoid/maml.yaml --set device=cuda");
        Assert.Equal(2, cuda.Code);
        Assert.Contains("CPU-only", cuda.Output);

        log.WriteLine($"train, eval, bench, check ops: {clock.Elapsed.TotalSeconds:F0} s");
        // gpu-check.sh end to end on the CPU with a token budget: its report must hold every part.
        var report = Path.Combine(tmp, "gpu-check.json");
        var check = Box($"./gpu-check.sh --device cpu --no-install --data-root '{TestPaths.SharedDatasets}' --iterations 2 --episodes 10 " +
                        $"--bench-iterations 1 --out '{report}'");
        Assert.True(check.Code == 0, check.Output);
        var r = JsonNode.Parse(File.ReadAllText(report))!;
        Assert.True(r["passed"]!.GetValue<bool>());
        Assert.Equal(0, r["ops"]!["failed"]!.GetValue<int>());
        foreach (var name in new[] { "maml", "protonet" })
            Assert.Equal(10, r[name]!["eval"]!["episodes"]!.GetValue<int>());
        Assert.True(r["bench"]!["per_task_median_seconds"]!.GetValue<double>() > 0);
        Assert.True(r["bench"]!["batched_median_seconds"]!.GetValue<double>() > 0);

        log.WriteLine($"bundle test: {clock.Elapsed.TotalSeconds:F0} s (package, install, train, eval, bench, check ops, gpu-check.sh)");
        Directory.Delete(tmp, recursive: true);
    }

    /// <summary>A script that runs its arguments with .NET out of reach.</summary>
    private static string HideDotnet(string tmp)
    {
        var empty = Directory.CreateDirectory(Path.Combine(tmp, "empty")).FullName;
        var script = Path.Combine(tmp, "without-dotnet.sh");
        // PATH loses every folder with a dotnet in it; /usr/bin is one on Debian, so it becomes a
        // folder of links to everything else in it.
        File.WriteAllText(script, $$"""
            #!/usr/bin/env bash
            set -e
            bin='{{tmp}}/usr-bin'
            if [ ! -d "$bin" ]; then
              mkdir -p "$bin"
              for f in /usr/bin/*; do [ "${f##*/}" = dotnet ] || ln -s "$f" "$bin/"; done
            fi
            path="$bin"
            IFS=: read -ra parts <<< "$PATH"
            for d in "${parts[@]}"; do
              [ "$d" = /usr/bin ] || [ "$d" = /bin ] || [ -e "$d/dotnet" ] || path="$path:$d"
            done
            export PATH="$path"
            unset DOTNET_ROOT DOTNET_HOST_PATH MSBuildExtensionsPath MSBUILD_EXE_PATH
            if [ -d /usr/share/dotnet ] && unshare -m --propagation private true 2>/dev/null; then
              exec unshare -m --propagation private bash -c 'mount --bind "$0" /usr/share/dotnet && export METARUN_TEST_PRIVATE_MOUNTS=1 && exec bash -c "$1"' '{{empty}}' "$1"
            fi
            exec bash -c "$1"
            """);
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return script;
    }

    private static (int Code, string Output) Sh(string command, string cwd, Dictionary<string, string>? env, string? wrapper = null)
    {
        var psi = new ProcessStartInfo("bash") { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true };
        if (wrapper != null) psi.ArgumentList.Add(wrapper);
        else psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(Limit))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{command}' ran past {Limit}");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
