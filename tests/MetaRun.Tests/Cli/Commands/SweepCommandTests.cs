using MetaRun.Sweeps;
using MetaRun.Tests.Sweeps;

namespace MetaRun.Tests.Cli.Commands;

[Collection(ProcessWideCollection.Name)]
public sealed class SweepCommandTests
{
    [Fact]
    public void TheCliRefusesASweepWithABadCombinationBeforeStartingAnything()
    {
        var dir = TestPaths.NewTempDir("sweepcli");
        var file = SweepTestSupport.WriteSweep(dir, "badtype", """
            grid:
              algorithm.inner_steps: [1, 2, many]
            """);
        var (code, _, err) = CliRunner.Run("sweep", file, "--parallel", "2");
        Assert.Equal(ExitCodes.BadUsage, code);
        Assert.Contains("combination 3 of 3 (algorithm.inner_steps=many seed=1)", err);
        Assert.Contains("'algorithm.inner_steps' must be an integer, not 'many'", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(dir, "badtype")), "nothing may be started or written for an invalid sweep");

        var (code2, _, err2) = CliRunner.Run("sweep", Path.Combine(dir, "missing.yaml"));
        Assert.Equal(ExitCodes.BadUsage, code2);
        Assert.Contains("missing.yaml: sweep file not found", err2);
    }

    [Fact]
    public void DryRunPrintsTheJobArrayScriptAndSubmitsNothing()
    {
        var dir = TestPaths.NewTempDir("sweepdry");
        var file = SweepTestSupport.WriteSweep(dir, "dry", """
            grid:
              algorithm.inner_lr: [0.01, 0.02, 0.03]
            seeds: [1, 2]
            slurm:
              partition: gpu
              time: "02:00:00"
              cpus_per_task: 4
              gpus: "1"
              mem: 8G
              throttle: 3
              extra: ["--qos=long", "#SBATCH --constraint=a100"]
            """);
        var (code, output, err) = CliRunner.Run("sweep", file, "--launcher", "slurm", "--dry-run");
        Assert.True(code == 0, err);
        var lines = output.Split('\n');
        Assert.Equal("#!/bin/bash", lines[0]);
        foreach (var expected in new[] { "#SBATCH --array=0-5%3", "#SBATCH --partition=gpu", "#SBATCH --time=02:00:00", "#SBATCH --cpus-per-task=4",
                     "#SBATCH --gpus=1", "#SBATCH --mem=8G", "#SBATCH --qos=long", "#SBATCH --constraint=a100", $"#SBATCH --chdir={Environment.CurrentDirectory}" })
            Assert.Contains(expected, lines);
        Assert.Contains(lines, l => l.StartsWith("exec ", StringComparison.Ordinal) && l.Contains($"'sweep' '{file}' --array-task \"$SLURM_ARRAY_TASK_ID\""));
        Assert.False(Directory.Exists(Path.Combine(dir, "dry")), "a dry run writes nothing");
    }
}
