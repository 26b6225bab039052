using MetaRun.Distributed;

namespace MetaRun.Tests.Distributed;

/// <summary>How a process learns its place in a run from torchrun's or Slurm's environment.</summary>
public sealed class LaunchTests
{
    private static Func<string, string?> Env(params (string Key, string Value)[] vars) =>
        key => vars.FirstOrDefault(v => v.Key == key).Value;

    [Fact]
    public void NoLauncherOrAWorldOfOneIsASingleProcessRun()
    {
        Assert.Null(Launch.FromEnvironment(Env()));
        Assert.Null(Launch.FromEnvironment(Env(("RANK", "0"), ("WORLD_SIZE", "1"))));
        Assert.Null(Launch.FromEnvironment(Env(("SLURM_PROCID", "0"), ("SLURM_STEP_NUM_TASKS", "1"), ("SLURM_JOB_NODELIST", "n1"))));
    }

    [Fact]
    public void TorchrunVariablesAreReadWithTorchrunsDefaults()
    {
        var l = Launch.FromEnvironment(Env(("RANK", "3"), ("WORLD_SIZE", "8"), ("LOCAL_RANK", "1"), ("LOCAL_WORLD_SIZE", "2"), ("MASTER_ADDR", "node-a"), ("MASTER_PORT", "1234")));
        Assert.Equal(new Launch(3, 8, 1, 2, "node-a", 1234), l);
        var d = Launch.FromEnvironment(Env(("RANK", "1"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")));
        Assert.Equal(new Launch(1, 2, 1, 2, "h", Launch.DefaultPort), d);
        Assert.True(d!.ServesStore == false && l!.ServesStore == false);
        Assert.True(Launch.FromEnvironment(Env(("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")))!.ServesStore);
    }

    [Fact]
    public void UnderTorchrunsAgentTheAgentServesTheStoreAndEachAttemptHasItsOwnKeys()
    {
        var l = Launch.FromEnvironment(Env(("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"), ("TORCHELASTIC_RESTART_COUNT", "3")))!;
        Assert.False(l.ServesStore);
        Assert.Equal("metarun/3/", l.StorePrefix);
    }

    [Fact]
    public void SlurmVariablesPutTheMasterOnTheFirstNode()
    {
        var l = Launch.FromEnvironment(Env(("SLURM_PROCID", "5"), ("SLURM_STEP_NUM_TASKS", "8"), ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[007-010,012],cpu3"), ("SLURM_TASKS_PER_NODE", "2(x4)")));
        Assert.Equal(new Launch(5, 8, 1, 2, "gpu007", Launch.DefaultPort), l);
    }

    [Theory]
    [InlineData("node1", "node1")]
    [InlineData("node1,node2", "node1")]
    [InlineData("n[3-5]", "n3")]
    [InlineData("n[09,11-12],m1", "n09")]
    [InlineData("a,b[1-2]", "a")]
    [InlineData("rack[1-2]-node[01-04]", "rack1-node01")]
    public void TheFirstHostOfASlurmHostlistIsFound(string list, string first) => Assert.Equal(first, Launch.FirstHost(list));

    [Fact]
    public void InconsistentVariablesAreConfigErrorsNamingTheVariable()
    {
        Assert.Contains("RANK=2 is not below WORLD_SIZE=2", Assert.Throws<ConfigException>(() => Launch.FromEnvironment(Env(("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")))).Message);
        Assert.Contains("MASTER_ADDR is not set", Assert.Throws<ConfigException>(() => Launch.FromEnvironment(Env(("RANK", "0"), ("WORLD_SIZE", "2")))).Message);
        Assert.Contains("WORLD_SIZE='two'", Assert.Throws<ConfigException>(() => Launch.FromEnvironment(Env(("RANK", "0"), ("WORLD_SIZE", "two")))).Message);
        Assert.Contains("SLURM_JOB_NODELIST", Assert.Throws<ConfigException>(() => Launch.FromEnvironment(Env(("SLURM_PROCID", "0"), ("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_LOCALID", "0")))).Message);
    }

    [Fact]
    public void SharesSplitEpisodesContiguouslyAndCoverThemOnce()
    {
        Assert.Equal((100L, 2), DataParallel.Share(100, 4, 0, 2));
        Assert.Equal((102L, 2), DataParallel.Share(100, 4, 1, 2));
        // 5 over 3 ranks: 2, 2, 1.
        Assert.Equal([(0L, 2), (2L, 2), (4L, 1)], Enumerable.Range(0, 3).Select(r => DataParallel.Share(0, 5, r, 3)).ToArray());
    }
}
