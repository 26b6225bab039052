using LibTorch;
using static MetaRun.Tests.LibTorch.TestSupport;

namespace MetaRun.Tests.LibTorch;

/// <summary>
/// Forward values of the nn functions against naive references written here, so that argument
/// plumbing (stride vs padding, weight vs running stats, ...) is checked: a gradient check alone
/// would pass for a consistently wrong function.
/// </summary>
public sealed class FunctionalTests
{
    private static double[] Random(int n, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => r.NextDouble() * 2 - 1).ToArray();
    }

    [Theory]
    [InlineData(1, 0, 1, 1)]
    [InlineData(2, 1, 1, 1)]
    [InlineData(2, 1, 1, 2)]
    [InlineData(1, 2, 2, 1)]
    [InlineData(3, 0, 1, 2)]
    public void Conv2dMatchesANaiveConvolution(int stride, int padding, int dilation, int groups)
    {
        const int n = 2, c = 4, h = 7, w = 6, o = 6, k = 3;
        var x = Random(n * c * h * w, 1);
        var wt = Random(o * (c / groups) * k * k, 2);
        var b = Random(o, 3);
        var oh = (h + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
        var ow = (w + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
        var expected = new double[n * o * oh * ow];
        int cg = c / groups, og = o / groups;
        for (var ni = 0; ni < n; ni++)
        for (var oi = 0; oi < o; oi++)
        for (var y = 0; y < oh; y++)
        for (var xx = 0; xx < ow; xx++)
        {
            var sum = b[oi];
            var g = oi / og;
            for (var ci = 0; ci < cg; ci++)
            for (var ky = 0; ky < k; ky++)
            for (var kx = 0; kx < k; kx++)
            {
                var iy = y * stride - padding + ky * dilation;
                var ix = xx * stride - padding + kx * dilation;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                sum += x[((ni * c + g * cg + ci) * h + iy) * w + ix] * wt[((oi * cg + ci) * k + ky) * k + kx];
            }
            expected[((ni * o + oi) * oh + y) * ow + xx] = sum;
        }
        using var scope = Torch.NewScope();
        var result = F.Conv2d(F64(x, n, c, h, w), F64(wt, o, cg, k, k), F64(b), stride, padding, dilation, groups);
        Assert.Equal([(long)n, o, oh, ow], result.Shape);
        AllClose(expected, result.D(), 1e-12);
    }

    [Theory]
    [InlineData(2, 2, 0)]
    [InlineData(3, 2, 1)]
    [InlineData(3, 1, 1)]
    public void PoolingMatchesNaivePooling(int k, int s, int p)
    {
        const int n = 2, c = 2, h = 7, w = 8;
        var x = Random(n * c * h * w, 4);
        var oh = (h + 2 * p - k) / s + 1;
        var ow = (w + 2 * p - k) / s + 1;
        var max = new double[n * c * oh * ow];
        var avg = new double[max.Length];
        for (var i = 0; i < n * c; i++)
        for (var y = 0; y < oh; y++)
        for (var xx = 0; xx < ow; xx++)
        {
            double m = double.NegativeInfinity, sum = 0;
            for (var ky = 0; ky < k; ky++)
            for (var kx = 0; kx < k; kx++)
            {
                int iy = y * s - p + ky, ix = xx * s - p + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                var v = x[(i * h + iy) * w + ix];
                m = Math.Max(m, v);
                sum += v;
            }
            max[(i * oh + y) * ow + xx] = m;
            avg[(i * oh + y) * ow + xx] = sum / (k * k); // PyTorch's default count_include_pad
        }
        using var scope = Torch.NewScope();
        var t = F64(x, n, c, h, w);
        var mp = F.MaxPool2d(t, k, s, p);
        Assert.Equal([(long)n, c, oh, ow], mp.Shape);
        AllClose(max, mp.D(), 1e-15);
        AllClose(avg, F.AvgPool2d(t, k, s, p).D(), 1e-12);
        // stride defaults to the kernel size
        Assert.Equal([(long)n, c, h / k, w / k], F.MaxPool2d(t, k).Shape);
    }

    [Fact]
    public void AdaptiveAveragePoolingUsesPyTorchsBins()
    {
        const int h = 5, w = 7, oh = 3, ow = 2;
        var x = Random(h * w, 5);
        var expected = new double[oh * ow];
        for (var i = 0; i < oh; i++)
        for (var j = 0; j < ow; j++)
        {
            int y0 = i * h / oh, y1 = ((i + 1) * h + oh - 1) / oh, x0 = j * w / ow, x1 = ((j + 1) * w + ow - 1) / ow;
            double sum = 0;
            for (var y = y0; y < y1; y++)
            for (var xx = x0; xx < x1; xx++) sum += x[y * w + xx];
            expected[i * ow + j] = sum / ((y1 - y0) * (x1 - x0));
        }
        using var scope = Torch.NewScope();
        AllClose(expected, F.AdaptiveAvgPool2d(F64(x, 1, 1, h, w), oh, ow).D(), 1e-12);
        // "area" interpolation is the same operation
        AllClose(expected, F.Interpolate(F64(x, 1, 1, h, w), oh, ow, InterpolationMode.Area).D(), 1e-12);
    }

    [Fact]
    public void BatchNormNormalizesWithBatchStatisticsAndUpdatesRunningOnes()
    {
        const int n = 4, c = 3, hw = 5;
        var x = Random(n * c * hw, 6);
        double[] gamma = [1.5, 0.5, -1], beta = [0.1, -0.2, 0.3];
        double[] rm0 = [0.2, -0.1, 0.0], rv0 = [1.5, 0.7, 2.0];
        const double momentum = 0.3, eps = 1e-5;
        using var scope = Torch.NewScope();
        var rm = F64(rm0);
        var rv = F64(rv0);
        var y = F.BatchNorm(F64(x, n, c, hw), rm, rv, F64(gamma), F64(beta), training: true, momentum, eps).D();
        for (var ci = 0; ci < c; ci++)
        {
            var vals = new List<double>();
            for (var ni = 0; ni < n; ni++)
            for (var k = 0; k < hw; k++) vals.Add(x[(ni * c + ci) * hw + k]);
            var mean = vals.Average();
            var biased = vals.Sum(v => (v - mean) * (v - mean)) / vals.Count;
            for (var ni = 0; ni < n; ni++)
            for (var k = 0; k < hw; k++)
            {
                var i = (ni * c + ci) * hw + k;
                Assert.Equal(gamma[ci] * (x[i] - mean) / Math.Sqrt(biased + eps) + beta[ci], y[i], 12);
            }
            Assert.Equal((1 - momentum) * rm0[ci] + momentum * mean, rm.D()[ci], 12);
            Assert.Equal((1 - momentum) * rv0[ci] + momentum * biased * vals.Count / (vals.Count - 1), rv.D()[ci], 12); // unbiased
        }

        // Eval mode uses the running statistics and leaves them alone.
        var rmNow = rm.D();
        var rvNow = rv.D();
        var z = F.BatchNorm(F64(x, n, c, hw), rm, rv, F64(gamma), F64(beta), training: false, momentum, eps).D();
        for (var i = 0; i < x.Length; i++)
        {
            var ci = i / hw % c;
            Assert.Equal(gamma[ci] * (x[i] - rmNow[ci]) / Math.Sqrt(rvNow[ci] + eps) + beta[ci], z[i], 12);
        }
        Assert.Equal(rmNow, rm.D());
        Assert.Equal(rvNow, rv.D());
    }

    [Fact]
    public void LossesActivationsAndLinearMatchTheirDefinitions()
    {
        using var scope = Torch.NewScope();
        var logits = Random(12, 7);
        long[] target = [2, 0, 3];
        double ce = 0;
        var lsm = new double[12];
        for (var i = 0; i < 3; i++)
        {
            var row = logits.Skip(4 * i).Take(4).ToArray();
            var lse = Math.Log(row.Sum(Math.Exp));
            for (var j = 0; j < 4; j++) lsm[4 * i + j] = row[j] - lse;
            ce -= lsm[4 * i + target[i]];
        }
        var l = F64(logits, 3, 4);
        AllClose(lsm, F.LogSoftmax(l, 1).D());
        AllClose(lsm.Select(Math.Exp).ToArray(), F.Softmax(l, 1).D());
        Assert.Equal(ce / 3, F.CrossEntropy(l, I64(target)).Item(), 12);
        Assert.Equal(ce, F.CrossEntropy(l, I64(target), Reduction.Sum).Item(), 12);
        AllClose(Enumerable.Range(0, 3).Select(i => -lsm[4 * i + target[i]]).ToArray(), F.CrossEntropy(l, I64(target), Reduction.None).D());

        var a = F64(1, 2, 3);
        var b = F64(0, 4, 3);
        Assert.Equal(5.0 / 3, F.MseLoss(a, b).Item(), 14);
        Assert.Equal(5.0, F.MseLoss(a, b, Reduction.Sum).Item());
        Assert.Equal([1.0, 4, 0], F.MseLoss(a, b, Reduction.None).D());

        Assert.Equal([-0.2, 0, 3], F.LeakyRelu(F64(-2, 0, 3), 0.1).D());
        Assert.Equal([-0.02, 3], F.LeakyRelu(F64(-2, 3)).D()); // default slope 0.01
        Assert.Equal([0.0, 0, 3], F.Relu(F64(-2, 0, 3)).D());

        // linear: x Wᵀ + b
        var y = F.Linear(F64([1, 2, 3, 4, 5, 6], 2, 3), F64([1, 0, -1, 2, 1, 0], 2, 3), F64(10, 20));
        Assert.Equal([8.0, 24, 8, 33], y.D());
        Assert.Equal([-2.0, 4, -2, 13], F.Linear(F64([1, 2, 3, 4, 5, 6], 2, 3), F64([1, 0, -1, 2, 1, 0], 2, 3)).D());
    }

    [Fact]
    public void BilinearInterpolationMatchesHalfPixelSampling()
    {
        const int h = 3, w = 4, oh = 5, ow = 7;
        var x = Random(h * w, 8);
        double Src(int dst, int inSize, int outSize) => Math.Max((dst + 0.5) * inSize / outSize - 0.5, 0);
        var expected = new double[oh * ow];
        for (var i = 0; i < oh; i++)
        for (var j = 0; j < ow; j++)
        {
            double sy = Src(i, h, oh), sx = Src(j, w, ow);
            int y0 = (int)sy, x0 = (int)sx, y1 = Math.Min(y0 + 1, h - 1), x1 = Math.Min(x0 + 1, w - 1);
            double fy = sy - y0, fx = sx - x0;
            expected[i * ow + j] = (1 - fy) * ((1 - fx) * x[y0 * w + x0] + fx * x[y0 * w + x1]) + fy * ((1 - fx) * x[y1 * w + x0] + fx * x[y1 * w + x1]);
        }
        using var scope = Torch.NewScope();
        var t = F64(x, 1, 1, h, w);
        AllClose(expected, F.Interpolate(t, oh, ow).D(), 1e-12);
        // Enlarging, antialiasing changes nothing; shrinking, it averages more input (a smoother result).
        AllClose(expected, F.Interpolate(t, oh, ow, antialias: true).D(), 1e-12);
        var big = F64(Random(16 * 16, 9), 1, 1, 16, 16);
        var plain = F.Interpolate(big, 4, 4);
        var aa = F.Interpolate(big, 4, 4, antialias: true);
        Assert.Equal([1L, 1, 4, 4], aa.Shape);
        Assert.True(aa.Var().Item() < plain.Var().Item());
        Assert.Equal([1L, 1, 4, 4], F.Interpolate(big, 4, 4, InterpolationMode.Bicubic).Shape);
        // A constant image stays constant under every mode.
        var flat = Torch.Full([1, 2, 9, 9], 0.25, ScalarType.Float64);
        foreach (var mode in new[] { InterpolationMode.Bilinear, InterpolationMode.Bicubic, InterpolationMode.Area })
        foreach (var antialias in new[] { false, true })
            Assert.All(F.Interpolate(flat, 4, 3, mode, antialias).D(), v => Assert.Equal(0.25, v, 12));
    }
}
