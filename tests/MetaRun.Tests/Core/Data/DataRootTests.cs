using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>Where the data sets and the decoded-image cache are looked for, in order.</summary>
[Collection(DataSerialCollection.Name)]
public sealed class DataRootTests
{
    [Fact]
    public void TheDataRootComesFromTheFlagThenTheConfigThenTheEnvironmentThenTheDefault()
    {
        var previous = Environment.GetEnvironmentVariable(DataRoot.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(DataRoot.EnvironmentVariable, "/env/root");
            Assert.Equal(("/cli/root", "--data-root"), DataRoot.ResolveWithSource("/cli/root", "/config/root"));
            Assert.Equal(("/config/root", "data.root in the config"), DataRoot.ResolveWithSource(null, "/config/root"));
            Assert.Equal("/env/root", DataRoot.Resolve(null, null));
            Environment.SetEnvironmentVariable(DataRoot.EnvironmentVariable, null);
            Assert.Equal(DataRoot.Default, DataRoot.Resolve(null, null));
            Assert.EndsWith("/.metarun/datasets", DataRoot.Default);
            Assert.Equal(Path.Combine(Directory.GetCurrentDirectory(), "rel", "data"), DataRoot.Resolve("rel/data", null));
            Assert.Equal(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "d"), DataRoot.Resolve(null, "~/d"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(DataRoot.EnvironmentVariable, previous);
        }
    }

    [Fact]
    public void TheCacheFolderComesFromItsOptionThenTheEnvironmentThenTheDefault()
    {
        var previous = Environment.GetEnvironmentVariable(ImageCache.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(ImageCache.EnvironmentVariable, "/env/cache");
            Assert.Equal("/opt/cache", ImageCache.ResolveDir(new DataOptions { CacheDir = "/opt/cache" }));
            Assert.Equal("/env/cache", ImageCache.ResolveDir(new DataOptions()));
            Environment.SetEnvironmentVariable(ImageCache.EnvironmentVariable, null);
            Assert.EndsWith("/.cache/metarun", ImageCache.ResolveDir(new DataOptions()));
        }
        finally
        {
            Environment.SetEnvironmentVariable(ImageCache.EnvironmentVariable, previous);
        }
    }

}
