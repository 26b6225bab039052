using MetaRun.Cli;

namespace MetaRun.Tests.Cli;

public sealed class EpisodeProgressTests
{
    [Fact]
    public void ALongEvaluationLogsALineAtEachQuarter()
    {
        var log = new StringWriter();
        var progress = new EpisodeProgress(log, live: false, quietFor: TimeSpan.Zero);
        for (var done = 25; done <= 600; done += 25) progress.Report((done, 600));
        Assert.Equal(["metarun: scored 150/600 episodes", "metarun: scored 300/600 episodes", "metarun: scored 450/600 episodes", "metarun: scored 600/600 episodes"],
            log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void AShortEvaluationLogsNothingAndATerminalLineIsErasedAtTheEnd()
    {
        var log = new StringWriter();
        var quiet = new EpisodeProgress(log, live: false, quietFor: TimeSpan.FromHours(1));
        quiet.Report((600, 600));
        Assert.Equal("", log.ToString());

        var terminal = new StringWriter();
        var live = new EpisodeProgress(terminal, live: true, quietFor: TimeSpan.Zero);
        live.Report((300, 600));
        Assert.Contains("scored 300/600", terminal.ToString());
        live.Report((600, 600));
        Assert.EndsWith("\r", terminal.ToString());
        Assert.DoesNotContain('\n', terminal.ToString());
    }
}
