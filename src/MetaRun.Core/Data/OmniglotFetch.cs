using System.Security.Cryptography;

namespace MetaRun.Data;

/// <summary>
/// Puts Omniglot under &lt;data root&gt;/omniglot: downloaded from the official repository (each
/// zip's MD5 checked against the official value), or copied from a local copy after checking
/// that it is complete by content (a re-encoded copy, such as the shared one, has other
/// checksums than the official zips, so a local copy is verified by counting and decoding
/// every image instead).
/// </summary>
public static class OmniglotFetch
{
    /// <summary>Copies a complete local Omniglot (zips or unpacked folders) from <paramref name="from"/> into <paramref name="targetDir"/>.</summary>
    public static void CopyFrom(string from, string targetDir, DataOptions options)
    {
        from = DataRoot.Expand(from);
        if (!Directory.Exists(from)) throw new DataException($"{from}: folder not found");
        // Accept a data root too: DIR/omniglot/images_background.zip.
        if (!HasPart(from) && HasPart(Path.Combine(from, Omniglot.Dataset))) from = Path.Combine(from, Omniglot.Dataset);
        targetDir = Path.GetFullPath(targetDir);
        if (string.Equals(Path.TrimEndingDirectorySeparator(from), Path.TrimEndingDirectorySeparator(targetDir), StringComparison.Ordinal))
            throw new DataException($"{from}: this is already the data root's omniglot folder; nothing to copy (check it with 'metarun data verify omniglot')");
        options.Log?.Invoke($"checking {from} (every image is decoded)");
        var report = DataVerifier.Omniglot(from, options);
        if (!report.Complete)
            throw new DataException($"{from} is not a complete Omniglot ({report.Problems.Count} problem{(report.Problems.Count == 1 ? "" : "s")}; first: {report.Problems[0]}); nothing was copied");
        Directory.CreateDirectory(targetDir);
        foreach (var part in Omniglot.Parts)
        {
            var zip = Path.Combine(from, part + ".zip");
            if (File.Exists(zip))
            {
                var tmp = Path.Combine(targetDir, $".{part}.zip.{Guid.NewGuid():N}.tmp");
                File.Copy(zip, tmp);
                File.Move(tmp, Path.Combine(targetDir, part + ".zip"), overwrite: true);
                options.Log?.Invoke($"copied {zip}");
            }
            else
            {
                var src = Path.Combine(from, part);
                var tmp = Path.Combine(targetDir, $".{part}.{Guid.NewGuid():N}.tmp");
                CopyTree(src, tmp);
                var dst = Path.Combine(targetDir, part);
                if (Directory.Exists(dst)) Directory.Delete(dst, recursive: true);
                Directory.Move(tmp, dst);
                options.Log?.Invoke($"copied {src}/");
            }
        }
    }

    /// <summary>Downloads the official zips into <paramref name="targetDir"/>, checking each MD5; any failure is a DataException and leaves no partial file.</summary>
    public static void Download(string targetDir, DataOptions options, HttpMessageHandler? handler = null)
    {
        targetDir = Path.GetFullPath(targetDir);
        Directory.CreateDirectory(targetDir);
        using var http = handler != null ? new HttpClient(handler) : new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(20) });
        http.Timeout = TimeSpan.FromMinutes(10);
        foreach (var url in new[] { Omniglot.BackgroundUrl, Omniglot.EvaluationUrl })
        {
            var name = url[(url.LastIndexOf('/') + 1)..];
            var dst = Path.Combine(targetDir, name);
            var tmp = Path.Combine(targetDir, $".{name}.{Guid.NewGuid():N}.download");
            try
            {
                options.Log?.Invoke($"downloading {url}");
                try
                {
                    using var response = http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult();
                    response.EnsureSuccessStatusCode();
                    using var body = response.Content.ReadAsStream();
                    using var file = File.Create(tmp);
                    body.CopyTo(file);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                {
                    throw new DataException($"cannot download {url}: {e.Message}. Without internet access, copy a local Omniglot with 'metarun data fetch omniglot --from DIR'", e);
                }
                string md5;
                using (var f = File.OpenRead(tmp)) md5 = Convert.ToHexStringLower(MD5.HashData(f));
                var want = Omniglot.OfficialMd5[name];
                if (md5 != want) throw new DataException($"{url}: downloaded file has MD5 {md5}, expected {want} (damaged download or changed upstream); nothing was kept");
                File.Move(tmp, dst, overwrite: true);
                options.Log?.Invoke($"{dst}: MD5 {md5} matches the official release");
            }
            finally
            {
                if (File.Exists(tmp)) File.Delete(tmp);
            }
        }
    }

    private static bool HasPart(string dir) =>
        Omniglot.Parts.Any(p => File.Exists(Path.Combine(dir, p + ".zip")) || Directory.Exists(Path.Combine(dir, p)));

    private static void CopyTree(string src, string dst)
    {
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.EnumerateFiles(src)) File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
        foreach (var d in Directory.EnumerateDirectories(src)) CopyTree(d, Path.Combine(dst, Path.GetFileName(d)));
    }
}
