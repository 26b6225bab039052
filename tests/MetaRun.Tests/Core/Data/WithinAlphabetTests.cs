using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>Omniglot's within-alphabet episodes (data.test.within_alphabet): every class of an episode from one alphabet, sampled as planned.</summary>
[Collection(OmniglotCollection.Name)]
public sealed class WithinAlphabetTests(OmniglotFixture fx)
{
    private ImageTaskFamily Open(string split)
    {
        var data = DataTestSupport.OmniglotConfig(split);
        data.Test.WithinAlphabet = true;
        return (ImageTaskFamily)TaskFamilies.Open(data, null, OmniglotFixture.Seed, fx.Options);
    }

    private static string AlphabetOf(ImageTaskFamily f, Split split, int cls) => Omniglot.Characters[f.Classes(split)[cls].Source].Alphabet.Name;

    [Theory]
    [InlineData("lake")]
    [InlineData("vinyals")]
    public void EveryEpisodeComesFromOneAlphabetAndSamplesItsPlan(string split)
    {
        using var f = Open(split);
        Assert.False(f.IsGrouped(Split.Train));
        var shape = new EpisodeShape(20, 1, 1);
        var alphabets = new HashSet<string>();
        foreach (var s in new[] { Split.Val, Split.Test })
            for (long i = 0; i < 200; i++)
            {
                var plan = f.Plan(s, i, shape);
                var of = plan.Classes.Select(c => AlphabetOf(f, s, c)).Distinct().ToArray();
                Assert.Single(of);
                if (s == Split.Test) alphabets.Add(of[0]);
            }
        // Episodes visit every test alphabet that has 20 characters (classes).
        Assert.Equal(f.EligibleGroups(Split.Test, 20).Length, alphabets.Count);

        // The sampled pixels are the planned images (the sampler and the plan draw alike).
        var plan3 = f.Plan(Split.Test, 3, shape);
        using var batch = f.Sample(Split.Test, 3, 1, shape);
        var sx = batch.SupportX.ToArray<float>();
        var maps = ImageTaskFamilyAccess.RotationMaps(28);
        for (var j = 0; j < 20; j++)
        {
            var cls = f.Classes(Split.Test)[plan3.Classes[j]];
            var stored = f.Store.Image(cls.Source, plan3.Images[j][0]).ToArray();
            for (var p = 0; p < 784; p++) Assert.Equal(stored[maps[cls.Rotation][p]] * (1f / 255f), sx[j * 784 + p]);
        }
    }

    /// <summary>The counts docs/own-data.md and docs/data.md quote (split seed 0).</summary>
    [Fact]
    public void EachSplitHasItsDocumentedAlphabetCounts()
    {
        using var lake = Open("lake");
        Assert.Equal(20, lake.EligibleGroups(Split.Test, 1).Length);
        Assert.Equal(20, lake.EligibleGroups(Split.Test, 20).Length);
        Assert.Equal(659, lake.EligibleGroups(Split.Test, 1).Sum(g => g.Length));
        Assert.Equal(5, lake.EligibleGroups(Split.Val, 1).Length);
        using var vinyals = Open("vinyals");
        var test = vinyals.EligibleGroups(Split.Test, 1);
        Assert.Equal(1692, test.Sum(g => g.Length));
        // Printed for the docs; the assertions above hold whatever they are.
        Console.WriteLine($"vinyals test: {test.Length} alphabets, {vinyals.EligibleGroups(Split.Test, 20).Length} with ≥ 20 classes, {vinyals.EligibleGroups(Split.Test, 5).Length} with ≥ 5; val: {vinyals.EligibleGroups(Split.Val, 1).Length} alphabets, {vinyals.EligibleGroups(Split.Val, 20).Length} with ≥ 20, {vinyals.EligibleGroups(Split.Val, 5).Length} with ≥ 5; lake val ≥ 20: {lake.EligibleGroups(Split.Val, 20).Length}");
    }

    [Fact]
    public void AWayCountNoAlphabetHasIsADataError()
    {
        using var f = Open("lake");
        var e = Assert.Throws<DataException>(() => f.Plan(Split.Test, 0, new EpisodeShape(48, 1, 1)));
        Assert.Contains("no alphabet has 48 classes", e.Message);
    }
}
