using System.Diagnostics;
using System.Globalization;
using MetaRun.Training;
using Spectre.Console;

namespace MetaRun.Cli;

/// <summary>
/// Training progress on the console: a live bar (iterations, ETA, loss, accuracies) on a terminal,
/// plain periodic lines when output is redirected (CI logs, scripts).
/// </summary>
public sealed class ConsoleProgress : ITrainingObserver
{
    private readonly bool live = !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
    private readonly Stopwatch sinceLine = Stopwatch.StartNew();
    private ProgressTask? bar;
    private long start;
    private long total;
    private double emaLoss = double.NaN;
    private double emaAccuracy = double.NaN;
    private string validation = "";
    private string? notice;

    /// <summary>
    /// A one-line notice (a stop being honoured) that must stay readable: a live bar redraws over
    /// anything written beside it, so the notice goes into the bar and is printed once the bar is
    /// done; without a bar it is printed at once.
    /// </summary>
    public void Say(string message)
    {
        if (bar == null)
        {
            Console.Error.WriteLine(message);
            return;
        }
        notice = message;
        bar.Description = Fitted(message);
    }

    /// <summary>
    /// The bar's description, cut to what fits beside its columns: a line that wraps makes the
    /// live display's redraw climb into the lines above it (the run folder's) and leave half-drawn bars.
    /// </summary>
    private static string Fitted(string text)
    {
        var room = Math.Max(20, AnsiConsole.Profile.Width - 75);
        return Markup.Escape(text.Length <= room ? text : text[..(room - 1)] + "…");
    }

    /// <summary>Runs <paramref name="work"/> with the progress display active.</summary>
    public void Run(Action work)
    {
        if (!live)
        {
            work();
            return;
        }
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                bar = ctx.AddTask("training", autoStart: true, maxValue: 1);
                work();
            });
        bar = null;
        if (notice != null) Console.Error.WriteLine(notice);
    }

    public void Started(long startIteration, long totalIterations)
    {
        (start, total) = (startIteration, totalIterations);
        if (bar != null)
        {
            bar.MaxValue = Math.Max(1, total - start);
            bar.Value = 0;
        }
        else
        {
            Console.WriteLine($"training iterations {start + 1}..{total}");
        }
    }

    public void Iteration(MetricsRow row)
    {
        emaLoss = double.IsNaN(emaLoss) ? row.TrainLoss : 0.95 * emaLoss + 0.05 * row.TrainLoss;
        emaAccuracy = double.IsNaN(emaAccuracy) ? row.TrainAccuracy : 0.95 * emaAccuracy + 0.05 * row.TrainAccuracy;
        var inv = CultureInfo.InvariantCulture;
        var acc = double.IsNaN(emaAccuracy) ? "" : $" acc {emaAccuracy.ToString("0.000", inv)}";
        var text = $"it {row.Iteration}/{total} loss {emaLoss.ToString("0.0000", inv)}{acc}{validation}";
        if (bar != null)
        {
            bar.Description = Fitted(notice ?? text);
            bar.Value = row.Iteration - start;
            return;
        }
        var every = Math.Max(1, (total - start) / 20);
        if (row.Iteration == total || row.Iteration % every == 0 || sinceLine.Elapsed.TotalSeconds >= 30)
        {
            var eta = row.Iteration > start ? TimeSpan.FromSeconds(row.Seconds / (row.Iteration - start) * (total - row.Iteration)) : TimeSpan.Zero;
            Console.WriteLine($"{text} elapsed {row.Seconds.ToString("0", inv)}s eta {eta:hh\\:mm\\:ss}");
            sinceLine.Restart();
        }
    }

    public void Validated(MetricsRow row, bool best)
    {
        var inv = CultureInfo.InvariantCulture;
        validation = row.ValAccuracy is { } a && double.IsFinite(a)
            ? $" val {a.ToString("0.000", inv)}"
            : $" val loss {row.ValLoss?.ToString("0.0000", inv)}";
        if (bar == null) Console.WriteLine($"validation at {row.Iteration}:{validation.Replace(" val", "")}{(best ? " (best so far)" : "")}");
    }
}
