using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MetaRun.Tests.Reports;

/// <summary>
/// Drives headless Chromium over a report: with every network request refused (no DNS, a dead
/// proxy), it collects the console messages of the page as written, and runs a probe script in a
/// copy of it that waits for the report to draw, then hovers, toggles and sorts the way a user
/// would and records what changed; and it takes screenshots.
/// </summary>
public static class ChromiumPage
{
    public static string Require()
    {
        var chromium = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);
        if (chromium != null) return chromium;
        Skip.IfNot(Environment.UserName == "root", "chromium is not installed; scripts/setup.sh installs it when run as root");
        Assert.Fail("chromium is not installed; run scripts/setup.sh (as root) first");
        return "";
    }

    // No request can leave: names resolve nowhere and any proxy-able request goes to a closed port.
    private static readonly string[] Offline = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"];

    /// <summary>Console lines (errors, warnings, logs) the page printed while loading and drawing.</summary>
    public static List<string> ConsoleMessages(string chromium, string page)
    {
        var (_, log) = Run(chromium, page, "--enable-logging=stderr", "--v=0", "--dump-dom");
        return log.Split('\n').Where(l => l.Contains(":CONSOLE")).ToList();
    }

    private const string Probe = """
        <script>
        window.addEventListener('load', async () => {
          const out = { errors: [] };
          // uPlot redraws in a microtask or animation frame after a change.
          const settle = () => new Promise(r => setTimeout(r, 100));
          window.addEventListener('error', e => out.errors.push(String(e.message)));
          const hash = c => { const d = c.toDataURL(); let h = 0; for (let i = 0; i < d.length; i += 7) h = (h * 31 + d.charCodeAt(i)) | 0; return h; };
          const canvases = () => [...document.querySelectorAll('.uplot canvas')];
          try {
            out.ready = document.body.getAttribute('data-ready') === '1';
            out.resources = performance.getEntriesByType('resource').map(e => e.name);
            out.charts = [...document.querySelectorAll('.chart')].filter(c => c.querySelector('.uplot canvas')).map(c => c.id || c.querySelector('.title').textContent);
            out.svgCharts = [...document.querySelectorAll('svg.svgchart')].map(s => s.id || s.getAttribute('data-key'));
            out.keyPanels = document.querySelectorAll('svg.keypanel').length;
            out.diffTables = document.querySelectorAll('table.diff').length;
            out.bestRows = document.querySelectorAll('table.results tr.best').length;
            out.resultRows = document.querySelectorAll('table.results tbody tr').length;
            out.variants = [...document.querySelectorAll('h3.variant')].map(h => h.textContent);
            out.figures = [...document.querySelectorAll('.chart.figure .title')].map(t => t.textContent);
            out.reliabilityDiagrams = document.querySelectorAll('svg.reliability').length;
            out.reliabilityBars = [...document.querySelectorAll('svg.reliability')].map(s => s.querySelectorAll('rect.bin').length);
            out.calibrationHeaders = [...document.querySelectorAll('table.results th')].map(h => h.textContent).filter(t => /NLL|ECE|Brier|AUROC/.test(t));
            out.canvasSizes = canvases().map(c => [c.width, c.height]);
            // Hover: the first curve chart's tooltip appears with values.
            const over = document.querySelector('.chart .u-over');
            const r = over.getBoundingClientRect();
            over.dispatchEvent(new MouseEvent('mouseenter', { clientX: r.left + r.width * 0.6, clientY: r.top + r.height / 2, bubbles: true }));
            over.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + r.width * 0.6, clientY: r.top + r.height / 2, bubbles: true }));
            await settle();
            const tip = over.closest('.chart').querySelector('.tip');
            out.tooltip = tip && tip.style.display === 'block' ? tip.textContent : null;
            // Toggle: hiding the first setting redraws every curve chart differently; showing it again restores them.
            const before = canvases().map(hash);
            const box = document.querySelector('input.toggle');
            box.click(); await settle();
            const hidden = canvases().map(hash);
            box.click(); await settle();
            const shown = canvases().map(hash);
            out.toggleChanged = before.filter((h, i) => h !== hidden[i]).length;
            out.toggleRestored = before.filter((h, i) => h === shown[i]).length;
            // Log scale redraws too.
            const log = document.getElementById('log-scale');
            log.click(); await settle();
            out.logChanged = canvases().map(hash).filter((h, i) => h !== before[i]).length;
            log.click(); await settle();
            // Sorting: the first numeric column, twice, reverses the rows.
            const table = document.querySelector('table.results');
            const order = () => [...table.tBodies[0].rows].map(r => r.cells[0].textContent).join(',');
            const th = [...table.querySelectorAll('th')].find(h => h.textContent.startsWith('test '));
            th.click(); const asc = order(); th.click(); const desc = order();
            out.sortAsc = asc; out.sortDesc = desc;
          } catch (e) { out.errors.push(String(e && e.stack || e)); }
          document.body.setAttribute('data-probe', JSON.stringify(out));
        });
        </script>
        """;

    /// <summary>What the probe saw after the report drew and it interacted with it.</summary>
    public static JsonElement Interact(string chromium, string page)
    {
        var probed = page + ".probe.html";
        // After the report's own scripts, so it runs once they have drawn.
        File.WriteAllText(probed, File.ReadAllText(page).Replace("</body>", Probe + "</body>"));
        var (dom, _) = Run(chromium, probed, "--window-size=1400,1200", "--dump-dom");
        var match = Regex.Match(dom, "data-probe=\"([^\"]*)\"");
        Assert.True(match.Success, "the probe found no result in the page:\n" + dom[..Math.Min(dom.Length, 800)]);
        return JsonDocument.Parse(System.Net.WebUtility.HtmlDecode(match.Groups[1].Value)).RootElement.Clone();
    }

    /// <summary>A full-width screenshot; returns its path.</summary>
    public static string Screenshot(string chromium, string page, string png, int width, int height)
    {
        File.Delete(png);
        Run(chromium, page, $"--window-size={width},{height}", "--hide-scrollbars", $"--screenshot={png}");
        Assert.True(File.Exists(png), "no screenshot");
        return png;
    }

    /// <summary>Distinct colours among sampled pixels: a blank or failed page has one or two.</summary>
    public static int Colours(string png)
    {
        using var image = SkiaSharp.SKBitmap.Decode(png);
        // A grid over the whole page: a blank page has one colour, a drawn one dozens.
        return Enumerable.Range(0, image.Height / 10).SelectMany(y => Enumerable.Range(0, image.Width / 10).Select(x => image.GetPixel(x * 10, y * 10))).Distinct().Count();
    }

    private static (string Out, string Err) Run(string chromium, string page, params string[] extra)
    {
        var info = new ProcessStartInfo(chromium) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--virtual-time-budget=8000" }.Concat(Offline).Concat(extra))
            info.ArgumentList.Add(a);
        info.ArgumentList.Add(new Uri(page).AbsoluteUri);
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(1)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("chromium did not finish in a minute");
        }
        return (stdout.Result, stderr.Result);
    }
}
