using System.Net;
using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>Downloading Omniglot, with the network replaced by a stand-in.</summary>
public sealed class OmniglotFetchTests : IDisposable
{
    private readonly TempDir dir = new("fetch");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void DownloadWithoutNetworkFailsClearly()
    {
        var e = Assert.Throws<DataException>(() => OmniglotFetch.Download(dir.Sub("root", "omniglot"), DataOptions.Default, new FakeHandler(null)));
        Assert.Contains("cannot download https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip", e.Message);
        Assert.Contains("--from", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Sub("root", "omniglot")));
    }

    [Fact]
    public void DownloadWithTheWrongChecksumKeepsNothing()
    {
        var e = Assert.Throws<DataException>(() => OmniglotFetch.Download(dir.Sub("root", "omniglot"), DataOptions.Default, new FakeHandler("not the zip"u8.ToArray())));
        Assert.Contains("MD5", e.Message);
        Assert.Contains("68d2efa1b9178cc56df9314c21c6e718", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Sub("root", "omniglot")));
    }

    private sealed class FakeHandler(byte[]? body) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            body == null
                ? throw new HttpRequestException("Name or service not known (github.com:443)")
                : Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) });
    }
}
