using LibTorch;
using MetaRun.Data;

namespace MetaRun.Tests.Data;

/// <summary>The sinusoid task family: shapes, values, and tasks as a function of seed, split and index.</summary>
public sealed class SinusoidTests
{
    private static readonly EpisodeShape Shape = new(1, 10, 7);

    [Fact]
    public void BatchesAreOneDimensionalFloatRegressionTasks()
    {
        using var f = TaskFamilies.Open(new MetaRun.Config.DataConfig { Dataset = MetaRun.Config.Dataset.Sinusoid }, null, 3);
        Assert.True(f.IsRegression);
        Assert.Equal([1L], f.InputShape);
        Assert.Equal(0, f.ClassCount(Split.Train));
        using var b = f.Sample(Split.Train, 0, 4, Shape);
        Assert.Equal([4L, 10, 1], b.SupportX.Shape);
        Assert.Equal([4L, 10, 1], b.SupportY.Shape);
        Assert.Equal([4L, 7, 1], b.QueryX.Shape);
        Assert.Equal([4L, 7, 1], b.QueryY.Shape);
        Assert.Equal(ScalarType.Float32, b.SupportY.DType);
        Assert.Equal(4, b.Tasks);
    }

    [Fact]
    public void ValuesFollowTheTasksSinusoid()
    {
        var f = new SinusoidTaskFamily(9);
        using var b = f.Sample(Split.Val, 100, 50, Shape);
        var sx = b.SupportX.ToArray<float>();
        var sy = b.SupportY.ToArray<float>();
        var qx = b.QueryX.ToArray<float>();
        var qy = b.QueryY.ToArray<float>();
        var amplitudes = new List<double>();
        var phases = new List<double>();
        for (var t = 0; t < 50; t++)
        {
            var (a, p) = f.Task(Split.Val, 100 + t);
            Assert.InRange(a, 0.1, 5.0);
            Assert.InRange(p, 0, Math.PI);
            amplitudes.Add(a);
            phases.Add(p);
            for (var i = 0; i < 10; i++)
            {
                Assert.InRange(sx[t * 10 + i], -5f, 5f);
                Assert.Equal(a * Math.Sin(sx[t * 10 + i] - p), sy[t * 10 + i], 1e-6);
            }
            for (var i = 0; i < 7; i++) Assert.Equal(a * Math.Sin(qx[t * 7 + i] - p), qy[t * 7 + i], 1e-6);
        }
        Assert.True(amplitudes.Max() - amplitudes.Min() > 2, "amplitudes should spread over [0.1, 5]");
        Assert.True(phases.Max() - phases.Min() > 1, "phases should spread over [0, π]");
        Assert.All(sy, y => Assert.InRange(y, -5f, 5f));
    }

    [Fact]
    public void TasksDependOnlyOnSeedSplitAndIndex()
    {
        var a = new SinusoidTaskFamily(5);
        var b = new SinusoidTaskFamily(5);
        using var x = a.Sample(Split.Train, 10, 3, Shape);
        using var y = b.Sample(Split.Train, 10, 3, Shape);
        DataTestSupport.AssertSameBatch(x, y);
        using var one = a.Sample(Split.Train, 11, 1, Shape);
        Assert.Equal(one.SupportY.ToBytes(), x.SupportY.Narrow(0, 1, 1).Contiguous().ToBytes());
        using var z = a.Sample(Split.Train, 11, 3, Shape);
        Assert.False(DataTestSupport.SameBatch(x, z));
        using var w = new SinusoidTaskFamily(6).Sample(Split.Train, 10, 3, Shape);
        Assert.False(DataTestSupport.SameBatch(x, w));
        using var v = a.Sample(Split.Test, 10, 3, Shape);
        Assert.False(DataTestSupport.SameBatch(x, v));
    }
}
