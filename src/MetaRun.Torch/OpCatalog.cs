namespace LibTorch;

/// <summary>
/// The binding's ops, each on small inputs chosen so that finite differences are exact enough (no
/// input near a kink or a tie). The binding tests check them on the CPU (OpCheck with finite
/// differences) and <c>metarun check ops --device cuda</c> on a GPU, so one list serves both.
/// </summary>
public static class OpCatalog
{
    public static IReadOnlyList<OpCase> All { get; } = Build();

    private static List<OpCase> Build()
    {
        var rng = new Random(20240601);
        var cases = new List<OpCase>();

        double[] Fill(long[] shape, Func<double> next)
        {
            long n = 1;
            foreach (var d in shape) n *= d;
            return Enumerable.Range(0, (int)n).Select(_ => next()).ToArray();
        }
        // Uniform on [-1, 1].
        OpInput U(params long[] s) => new(s, Fill(s, () => rng.NextDouble() * 2 - 1));
        // Uniform on [0.5, 2] (sqrt, log, pow of a positive base).
        OpInput Pos(params long[] s) => new(s, Fill(s, () => 0.5 + rng.NextDouble() * 1.5));
        // Distinct values 0.1 apart, shuffled, none within 0.015 of 0 or of a multiple of 0.1 offset by 0.075:
        // far from every kink (relu, abs, max, clamp bounds at -0.325 / 0.475) compared with Eps.
        OpInput Distinct(params long[] s)
        {
            long n = 1;
            foreach (var d in s) n *= d;
            var v = Enumerable.Range(0, (int)n).Select(k => (k - n / 2) * 0.1 + 0.025 + (rng.NextDouble() - 0.5) * 0.02).ToArray();
            rng.Shuffle(v);
            return new OpInput(s, v);
        }
        OpInput Split(OpInput all, int offset, params long[] s)
        {
            long n = 1;
            foreach (var d in s) n *= d;
            return new OpInput(s, all.Data.Skip(offset).Take((int)n).ToArray());
        }
        void Add(string name, Func<OpContext, Tensor[], Tensor> f, params OpInput[] inputs) => cases.Add(new OpCase(name, f, inputs));

        // ---- elementwise ----
        Add("neg", (c, x) => x[0].Neg(), U(2, 3));
        Add("unary minus", (c, x) => -x[0], U(2, 3));
        Add("sqrt", (c, x) => x[0].Sqrt(), Pos(2, 3));
        Add("exp", (c, x) => x[0].Exp(), U(2, 3));
        Add("log", (c, x) => x[0].Log(), Pos(2, 3));
        Add("abs", (c, x) => x[0].Abs(), Distinct(2, 3));
        Add("relu", (c, x) => x[0].Relu(), Distinct(2, 3));
        Add("sigmoid", (c, x) => x[0].Sigmoid(), U(2, 3));
        Add("tanh", (c, x) => x[0].Tanh(), U(2, 3));
        Add("reciprocal", (c, x) => x[0].Reciprocal(), Pos(2, 3));
        Add("reciprocal negative", (c, x) => x[0].Reciprocal(), new OpInput([3], [-0.7, -1.3, 0.9]));
        Add("square", (c, x) => x[0].Square(), U(2, 3));
        Add("pow scalar 2.5", (c, x) => x[0].Pow(2.5), Pos(2, 3));
        Add("pow scalar 3 negative base", (c, x) => x[0].Pow(3), U(2, 3));
        Add("pow scalar -1.5", (c, x) => x[0].Pow(-1.5), Pos(4));
        Add("pow tensor", (c, x) => x[0].Pow(x[1]), Pos(2, 3), U(2, 3));
        Add("pow tensor broadcast", (c, x) => x[0].Pow(x[1]), Pos(2, 3), U(3));
        Add("add broadcast [2,3]+[3]", (c, x) => x[0] + x[1], U(2, 3), U(3));
        Add("add alpha", (c, x) => x[0].Add(x[1], 2.5), U(2, 3), U(2, 1));
        Add("sub broadcast [2,1]-[1,3]", (c, x) => x[0] - x[1], U(2, 1), U(1, 3));
        Add("mul broadcast [2,3,4]*[3,1]", (c, x) => x[0] * x[1], U(2, 3, 4), U(3, 1));
        Add("mul scalar tensor", (c, x) => x[0] * x[1], U(2, 3), U());
        Add("div broadcast [2,3]/[2,1]", (c, x) => x[0] / x[1], U(2, 3), Pos(2, 1));
        Add("div broadcast [3]/[2,3]", (c, x) => x[0] / x[1], U(3), Pos(2, 3));
        Add("x + 2", (c, x) => x[0] + 2, U(2, 3));
        Add("x - 2", (c, x) => x[0] - 2, U(2, 3));
        Add("x * 3", (c, x) => x[0] * 3, U(2, 3));
        Add("x / 4", (c, x) => x[0] / 4, U(2, 3));
        Add("2 + x", (c, x) => 2 + x[0], U(2, 3));
        Add("1 - x", (c, x) => 1 - x[0], U(2, 3));
        Add("3 * x", (c, x) => 3 * x[0], U(2, 3));
        Add("2 / x", (c, x) => 2 / x[0], Pos(2, 3));
        Add("matmul 2d", (c, x) => x[0].MatMul(x[1]), U(3, 4), U(4, 2));
        Add("matmul batched x 2d", (c, x) => x[0].MatMul(x[1]), U(2, 3, 4), U(4, 5));
        Add("matmul batched x batched", (c, x) => x[0].MatMul(x[1]), U(2, 3, 4), U(2, 4, 2));
        Add("matmul vector x matrix", (c, x) => x[0].MatMul(x[1]), U(4), U(4, 3));
        Add("matmul matrix x vector", (c, x) => x[0].MatMul(x[1]), U(3, 4), U(4));
        var mm = Distinct(9);
        Add("maximum broadcast", (c, x) => x[0].Maximum(x[1]), Split(mm, 0, 2, 3), Split(mm, 6, 3));
        Add("minimum broadcast", (c, x) => x[0].Minimum(x[1]), Split(mm, 0, 2, 3), Split(mm, 6, 3));
        Add("maximum same shape", (c, x) => x[0].Maximum(x[1]), Split(mm, 0, 4), Split(mm, 4, 4));
        Add("clamp both", (c, x) => x[0].Clamp(-0.325, 0.475), Distinct(3, 5));
        Add("clamp min", (c, x) => x[0].Clamp(min: -0.325), Distinct(3, 5));
        Add("clamp max", (c, x) => x[0].Clamp(max: 0.475), Distinct(3, 5));
        Add("where broadcast", (c, x) => Torch.Where(c.Bool([true, false, true, false, false, true], 2, 3), x[0], x[1]), U(2, 3), U(3));

        // ---- shapes ----
        Add("view", (c, x) => x[0].View(4, 6), U(2, 3, 4));
        Add("view -1", (c, x) => x[0].View(-1, 2), U(2, 3, 4));
        Add("reshape non-contiguous", (c, x) => x[0].Transpose(0, 1).Reshape(6, 4), U(2, 3, 4));
        Add("permute", (c, x) => x[0].Permute(2, 0, 1), U(2, 3, 4));
        Add("transpose", (c, x) => x[0].Transpose(0, 2), U(2, 3, 4));
        Add("flatten from 1", (c, x) => x[0].Flatten(1), U(2, 3, 4));
        Add("flatten all", (c, x) => x[0].Flatten(), U(2, 3, 4));
        Add("flatten 0..1", (c, x) => x[0].Flatten(0, 1), U(2, 3, 4));
        Add("cat dim 1", (c, x) => Torch.Cat([x[0], x[1]], 1), U(2, 3), U(2, 2));
        Add("cat dim 0 three", (c, x) => Torch.Cat([x[0], x[1], x[0]], 0), U(1, 3), U(2, 3));
        Add("stack dim 0", (c, x) => Torch.Stack([x[0], x[1]]), U(2, 3), U(2, 3));
        Add("stack dim 2", (c, x) => Torch.Stack([x[0], x[1]], 2), U(2, 3), U(2, 3));
        Add("index_select repeated", (c, x) => x[0].IndexSelect(1, c.Long(2, 0, 2)), U(2, 3));
        Add("narrow", (c, x) => x[0].Narrow(1, 1, 2), U(2, 4));
        Add("unsqueeze", (c, x) => x[0].Unsqueeze(1), U(2, 3));
        Add("unsqueeze -1", (c, x) => x[0].Unsqueeze(-1), U(2, 3));
        Add("squeeze all", (c, x) => x[0].Squeeze(), U(2, 1, 3, 1));
        Add("squeeze dim", (c, x) => x[0].Squeeze(1), U(2, 1, 3, 1));
        Add("expand", (c, x) => x[0].Expand(2, 3, 4), U(3, 1));
        Add("expand -1", (c, x) => x[0].Expand(-1, 5), U(3, 1));
        Add("repeat", (c, x) => x[0].Repeat(2, 1, 2), U(2, 3));
        Add("gather", (c, x) => x[0].Gather(1, c.Long([0, 0, 3, 1, 2, 1, 3, 3, 3], 3, 3)), U(3, 4));
        Add("index int64 repeated", (c, x) => x[0][c.Long(2, 0, 2)], U(3, 2));
        Add("index bool mask", (c, x) => x[0][c.Bool([true, false, true, true], 4)], U(4, 2));
        Add("index i", (c, x) => x[0][1], U(3, 2));
        Add("index -1", (c, x) => x[0][-1], U(3, 2));

        // ---- reductions ----
        Add("sum all", (c, x) => x[0].Sum(), U(2, 3, 4));
        Add("sum dim", (c, x) => x[0].Sum(1), U(2, 3, 4));
        Add("sum dims keepdim", (c, x) => x[0].Sum([0, 2], keepDim: true), U(2, 3, 4));
        Add("mean all", (c, x) => x[0].Mean(), U(2, 3, 4));
        Add("mean dim keepdim", (c, x) => x[0].Mean(-1, keepDim: true), U(2, 3, 4));
        Add("mean dims", (c, x) => x[0].Mean([0, 1]), U(2, 3, 4));
        Add("var all", (c, x) => x[0].Var(), U(2, 3, 4));
        Add("var all biased", (c, x) => x[0].Var(unbiased: false), U(2, 3, 4));
        Add("var dim", (c, x) => x[0].Var(1), U(2, 3, 4));
        Add("var dim biased keepdim", (c, x) => x[0].Var(2, unbiased: false, keepDim: true), U(2, 3, 4));
        Add("std all", (c, x) => x[0].Std(), U(2, 3, 4));
        Add("std dim keepdim", (c, x) => x[0].Std(0, keepDim: true), U(2, 3, 4));
        Add("max all", (c, x) => x[0].Max(), Distinct(3, 4));
        Add("max dim", (c, x) => x[0].Max(1), Distinct(3, 4));
        Add("max dim keepdim", (c, x) => x[0].Max(0, keepDim: true), Distinct(3, 4));
        Add("min all", (c, x) => x[0].Min(), Distinct(3, 4));
        Add("min dim", (c, x) => x[0].Min(-1), Distinct(3, 4));
        Add("min dim keepdim", (c, x) => x[0].Min(0, keepDim: true), Distinct(3, 4));

        // ---- neural network ----
        Add("conv2d", (c, x) => F.Conv2d(x[0], x[1], x[2]), U(2, 2, 5, 5), U(3, 2, 3, 3), U(3));
        Add("conv2d stride 2 padding 1", (c, x) => F.Conv2d(x[0], x[1], x[2], stride: 2, padding: 1), U(2, 2, 5, 5), U(3, 2, 3, 3), U(3));
        Add("conv2d groups 2 no bias", (c, x) => F.Conv2d(x[0], x[1], null, stride: 2, padding: 1, groups: 2), U(2, 4, 5, 5), U(4, 2, 3, 3));
        // The batched meta-batch's layout: three tasks' weights side by side as groups.
        Add("conv2d groups 3 per-task weights", (c, x) => F.Conv2d(x[0], x[1], x[2], padding: 1, groups: 3), U(2, 3, 4, 4), U(6, 1, 3, 3), U(6));
        // Per-task kernels [T, O, C, KH, KW] over a meta-batch's images: each task its own, and one θ
        // expanded over the tasks (the first inner step: one ordinary convolution over the tasks' images).
        Add("conv2d per-task kernels, three tasks", (c, x) => F.Conv2d(x[0], x[1], x[2], stride: 2, padding: 1, groups: 3), U(2, 6, 5, 5), U(3, 4, 2, 3, 3), U(3, 4));
        Add("conv2d per-task kernels shared by three tasks", (c, x) =>
            F.Conv2d(x[0], x[1].Unsqueeze(0).Expand([3, 4, 2, 3, 3]), x[2].Unsqueeze(0).Expand([3, 4]), stride: 2, padding: 1, groups: 3), U(2, 6, 5, 5), U(4, 2, 3, 3), U(4));
        Add("conv2d dilation 2", (c, x) => F.Conv2d(x[0], x[1], x[2], padding: 2, dilation: 2), U(1, 2, 5, 5), U(2, 2, 3, 3), U(2));
        Add("batch_norm training", (c, x) => F.BatchNorm(x[0], null, null, x[1], x[2], training: true), U(4, 3, 2, 2), Pos(3), U(3));
        // Maps of 25 values: the binding's kernels sum a channel in 16 lanes, then a tail.
        Add("batch_norm training 5x5 maps", (c, x) => F.BatchNorm(x[0], null, null, x[1], x[2], training: true), U(3, 2, 5, 5), Pos(2), U(2));
        Add("batch_norm training running stats", (c, x) =>
                F.BatchNorm(x[0], c.Zeros(3), c.Ones(3), x[1], x[2], training: true, momentum: 0.3),
            U(4, 3, 2, 2), Pos(3), U(3));
        Add("batch_norm training no affine 2d", (c, x) => F.BatchNorm(x[0], null, null, null, null, training: true), U(5, 3));
        var runningMean = U(3).Data;
        var runningVar = Pos(3).Data;
        Add("batch_norm eval running stats", (c, x) =>
                F.BatchNorm(x[0], c.Float(runningMean), c.Float(runningVar), x[1], x[2], training: false),
            U(4, 3, 2, 2), Pos(3), U(3));
        Add("max_pool2d k2", (c, x) => F.MaxPool2d(x[0], 2), Distinct(2, 2, 4, 6));
        Add("max_pool2d k3 s2 p1", (c, x) => F.MaxPool2d(x[0], 3, stride: 2, padding: 1), Distinct(1, 2, 5, 5));
        Add("avg_pool2d k2", (c, x) => F.AvgPool2d(x[0], 2), U(2, 2, 4, 6));
        Add("avg_pool2d k3 s2 p1", (c, x) => F.AvgPool2d(x[0], 3, stride: 2, padding: 1), U(1, 2, 5, 5));
        Add("adaptive_avg_pool2d 5x7 to 3x2", (c, x) => F.AdaptiveAvgPool2d(x[0], 3, 2), U(2, 2, 5, 7));
        Add("leaky_relu", (c, x) => F.LeakyRelu(x[0], 0.1), Distinct(3, 4));
        Add("linear", (c, x) => F.Linear(x[0], x[1], x[2]), U(4, 3), U(2, 3), U(2));
        Add("linear no bias 3d input", (c, x) => F.Linear(x[0], x[1]), U(2, 4, 3), U(5, 3));
        Add("log_softmax dim 1", (c, x) => F.LogSoftmax(x[0], 1), U(3, 4));
        Add("log_softmax dim 0", (c, x) => F.LogSoftmax(x[0], 0), U(3, 4));
        Add("softmax dim 1", (c, x) => F.Softmax(x[0], 1), U(3, 4));
        Add("softmax dim -1 3d", (c, x) => F.Softmax(x[0], -1), U(2, 2, 3));
        var target = new long[] { 0, 3, 1, 1, 2 };
        Add("cross_entropy mean", (c, x) => F.CrossEntropy(x[0], c.Long(target)), U(5, 4));
        Add("cross_entropy sum", (c, x) => F.CrossEntropy(x[0], c.Long(target), Reduction.Sum), U(5, 4));
        Add("cross_entropy none", (c, x) => F.CrossEntropy(x[0], c.Long(target), Reduction.None), U(5, 4));
        Add("mse_loss mean", (c, x) => F.MseLoss(x[0], x[1]), U(3, 4), U(3, 4));
        Add("mse_loss sum", (c, x) => F.MseLoss(x[0], x[1], Reduction.Sum), U(3, 4), U(3, 4));
        Add("mse_loss none", (c, x) => F.MseLoss(x[0], x[1], Reduction.None), U(3, 4), U(3, 4));
        Add("interpolate bilinear up", (c, x) => F.Interpolate(x[0], 5, 7), U(1, 2, 3, 4));
        Add("interpolate bilinear down", (c, x) => F.Interpolate(x[0], 3, 5), U(1, 2, 8, 8));
        Add("interpolate bilinear down antialias", (c, x) => F.Interpolate(x[0], 3, 5, antialias: true), U(1, 2, 8, 8));
        Add("interpolate bilinear up antialias", (c, x) => F.Interpolate(x[0], 5, 7, antialias: true), U(1, 2, 3, 4));
        Add("interpolate bicubic down antialias", (c, x) => F.Interpolate(x[0], 3, 3, InterpolationMode.Bicubic, antialias: true), U(1, 1, 7, 6));
        Add("interpolate area", (c, x) => F.Interpolate(x[0], 3, 2, InterpolationMode.Area), U(1, 2, 7, 5));
        // Both outputs at once, so the gradient check covers the paths through h and through c.
        Add("lstm_cell", (c, x) =>
        {
            var (h, cell) = F.LstmCell(x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
            return Torch.Cat([h, cell], 1);
        }, U(3, 4), U(3, 5), U(3, 5), U(20, 4), U(20, 5), U(20), U(20));
        Add("lstm_cell no bias, one row", (c, x) =>
        {
            var (h, cell) = F.LstmCell(x[0], x[1], x[2], x[3], x[4]);
            return Torch.Stack([h, cell]);
        }, U(1, 2), U(1, 3), U(1, 3), U(12, 2), U(12, 3));
        // SNAIL's temporal convolutions: left padding only, so the output keeps the sequence length.
        Add("causal_conv1d dilation 1", (c, x) => F.CausalConv1d(x[0], x[1], x[2]), U(2, 3, 5), U(4, 3, 2), U(4));
        Add("causal_conv1d dilation 4 no bias", (c, x) => F.CausalConv1d(x[0], x[1], null, dilation: 4), U(1, 2, 9), U(3, 2, 2));
        Add("masked_softmax causal", (c, x) => F.MaskedSoftmax(x[0], c.Bool([true, false, false, true, true, false, true, true, true], 3, 3), 1), U(2, 3, 3));
        Add("masked_softmax broadcast mask, an empty row", (c, x) => F.MaskedSoftmax(x[0], c.Bool([false, false, false, false, true, true, true, false], 2, 4), -1), U(3, 2, 4));
        Add("kthvalue k 2 dim 1", (c, x) => x[0].KthValue(2, 1), Distinct(3, 5));
        Add("kthvalue k 1 dim 0 keepdim", (c, x) => x[0].KthValue(1, 0, keepDim: true), Distinct(4, 3));
        Add("dropout eval", (c, x) => F.Dropout(x[0], 0.4, training: false), U(4, 5));

        // ---- composites ----
        Add("mlp", (c, x) => F.LogSoftmax(F.Linear(F.Linear(x[0], x[1], x[2]).Tanh(), x[3]), 1), U(3, 4), U(5, 4), U(5), U(2, 5));

        // ---- the blocked convolution stack (F.ConvStack): float32 on the CPU only ----
        // Two tasks' images [N, 2, 6, 6] through two blocks of conv (stride 2) → batch norm → ReLU
        // and the mean over space. The float64 reference is the same network op by op (its
        // gradients checked by finite differences); float32 is the stack, which has no other
        // precision, where this processor runs it. The input is data (the stack gives it no gradient).
        var xc = U(2, 2, 6, 6).Data;
        var xc2 = U(2, 4, 5, 5).Data;
        Tensor Stack(OpContext c, Tensor x, Tensor[] p)
        {
            if (c.DType == ScalarType.Float32 && c.Device.Type == DeviceType.Cpu && F.ConvStackAvailable) return F.ConvStack(x, p, stride: 2, padding: 1);
            for (var b = 0; b < p.Length / 4; b++)
                x = F.BatchNorm(F.Conv2d(x, p[4 * b], p[4 * b + 1], stride: 2, padding: 1, groups: 2), null, null, p[4 * b + 2].Reshape(-1), p[4 * b + 3].Reshape(-1), training: true).Relu();
            return x.Mean([2, 3]);
        }
        Add("conv stack: two blocks, per-task kernels", (c, p) => Stack(c, c.Float(xc, [2, 2, 6, 6]), p),
            U(2, 16, 1, 3, 3), U(2, 16), Pos(2, 16), U(2, 16), U(2, 16, 16, 3, 3), U(2, 16), Pos(2, 16), U(2, 16));
        // While the tasks share θ (the first inner step) every weight is one tensor expanded over the tasks.
        Add("conv stack: two blocks, kernels shared by the tasks", (c, p) =>
            Stack(c, c.Float(xc, [2, 2, 6, 6]), [.. p.Select(w => w.Unsqueeze(0).Expand([2, .. w.Shape]))]),
            U(16, 1, 3, 3), U(16), Pos(16), U(16), U(16, 16, 3, 3), U(16), Pos(16), U(16));
        // Two input channels per task and an odd size: the first convolution's general path.
        Add("conv stack: one block, two input channels per task", (c, p) => Stack(c, c.Float(xc2, [2, 4, 5, 5]), p),
            U(2, 16, 2, 3, 3), U(2, 16), Pos(2, 16), U(2, 16));

        // ---- second order: MAML's meta-gradient through one inner step (createGraph) ----
        // conv → batch norm (training) → relu → max pool → linear, cross-entropy, as the Omniglot model.
        var xs = U(6, 1, 4, 4).Data;
        var xq = U(6, 1, 4, 4).Data;
        Add("second order: maml step conv-bn-relu-pool-linear", (c, p) =>
        {
            Tensor Net(IReadOnlyList<Tensor> w, Tensor x) =>
                F.Linear(F.MaxPool2d(F.BatchNorm(F.Conv2d(x, w[0], w[1], padding: 1), null, null, w[2], w[3], training: true).Relu(), 2).Flatten(1), w[4], w[5]);
            var support = F.CrossEntropy(Net(p, c.Float(xs, [6, 1, 4, 4])), c.Long(0, 1, 2, 0, 1, 2));
            var grads = Torch.Grad([support], p, createGraph: true);
            var adapted = p.Select((w, i) => w - 0.4 * grads[i]!).ToArray();
            return F.CrossEntropy(Net(adapted, c.Float(xq, [6, 1, 4, 4])), c.Long(2, 2, 1, 0, 0, 1));
        }, U(2, 1, 3, 3), U(2), Pos(2), U(2), U(3, 8), U(3));
        // A meta-batch of two tasks side by side (execution: batched): grouped stride-2 convolution with
        // per-task kernels, batch norm over both tasks' channels, each task's own support loss.
        var xb = U(3, 2, 5, 5).Data;
        var xbq = U(3, 2, 5, 5).Data;
        Add("second order: batched maml step grouped conv-bn-relu, two tasks", (c, p) =>
        {
            Tensor Net(IReadOnlyList<Tensor> w, Tensor x) =>
                F.BatchNorm(F.Conv2d(x, w[0], w[1], stride: 2, padding: 1, groups: 2), null, null, w[2], w[3], training: true).Relu().Mean([2, 3]);
            Tensor Loss(Tensor features) => (features * c.Float([0.5, -1.0, 0.25, 0.75], [1, 4])).Sum().Square();
            var support = Loss(Net(p, c.Float(xb, [3, 2, 5, 5])));
            var grads = Torch.Grad([support], p, createGraph: true);
            var adapted = p.Select((w, i) => w - 0.3 * grads[i]!).ToArray();
            return Loss(Net(adapted, c.Float(xbq, [3, 2, 5, 5])));
        }, U(4, 1, 3, 3), U(4), Pos(4), U(4));
        // A third derivative: the gradient of a Hessian-vector product's norm through conv and batch norm.
        var xt = U(4, 1, 4, 4).Data;
        Add("third order: hessian-vector product through conv-bn", (c, p) =>
        {
            // No convolution bias: batch norm cancels it, so its third derivative is zero and float32's is noise.
            var y = F.BatchNorm(F.Conv2d(c.Float(xt, [4, 1, 4, 4]), p[0], null, padding: 1), null, null, p[1], p[2], training: true);
            var loss = (y.Tanh() * c.Float([0.3, -0.6], [1, 2, 1, 1])).Sum();
            var g = Torch.Grad([loss], p, createGraph: true);
            var gv = g.Select(t => t!.Sum()).Aggregate((a, b) => a + b);
            var h = Torch.Grad([gv], p, createGraph: true);
            return h.Select(t => t!.Square().Sum()).Aggregate((a, b) => a + b);
        }, U(2, 1, 3, 3), Pos(2), U(2));
        Add("second order: gradient norm of linear-tanh-mse", (c, p) =>
        {
            var loss = F.MseLoss(F.Linear(p[0], p[1], p[2]).Tanh(), c.Float([0.3, -0.2, 0.1, 0.5, -0.4, 0.2], [3, 2]));
            var g = Torch.Grad([loss], [p[1]], createGraph: true)[0]!;
            return g.Square().Sum();
        }, U(3, 4), U(2, 4), U(2));

        // ---- creation on the device ----
        Add("full", (c, x) => Torch.Full([2, 3], 1.5, c.DType, c.Device) * x[0], U(2, 3));
        Add("zeros + ones", (c, x) => Torch.Zeros([2, 3], c.DType, c.Device) + Torch.Ones([3], c.DType, c.Device) * x[0], U(2, 3));
        Add("scalar", (c, x) => Torch.Scalar(2.5, c.DType, c.Device) * x[0], U(4));
        Add("arange", (c, x) => Torch.Arange(0, 3, 0.5, c.DType, c.Device) * x[0], U(6));
        Add("empty then fill_", (c, x) => Torch.Empty([2, 3], c.DType, c.Device).Fill_(0.75) + x[0], U(2, 3));
        Add("to the device and back", (c, x) => x[0].To(Device.Cpu).To(c.Device) * 2, U(2, 3));
        Add("to another dtype and back", (c, x) => x[0].To(ScalarType.Float64).To(c.DType), U(2, 3));
        Add("clone", (c, x) => x[0].Clone(), U(2, 3));
        Add("contiguous of a transpose", (c, x) => x[0].Transpose(0, 1).Contiguous(), U(2, 3));
        Add("alias", (c, x) => x[0].Alias() * 3, U(2, 3));

        // ---- forward only: comparisons, logic, indices, in-place, optimizer steps ----
        void Forward(string name, Func<OpContext, Tensor[], Tensor> f, params OpInput[] inputs) => cases.Add(new OpCase(name, f, inputs, Differentiable: false));
        var cmp = Distinct(12);
        Forward("eq ne lt le gt ge", (c, x) => Torch.Stack([x[0].Eq(x[1]), x[0].Ne(x[1]), x[0].Lt(x[1]), x[0].Le(x[1]), x[0].Gt(x[1]), x[0].Ge(x[1])]),
            Split(cmp, 0, 2, 3), Split(cmp, 6, 2, 3));
        Forward("scalar comparisons", (c, x) => Torch.Stack([x[0].Eq(0.025), x[0].Ne(0.025), x[0] < 0.0, x[0] <= 0.0, x[0] > 0.1, x[0] >= 0.1]), Distinct(2, 3));
        Forward("logical and or not", (c, x) => Torch.Stack([(x[0] > 0).LogicalAnd(x[1] > 0), (x[0] > 0).LogicalOr(x[1] > 0), (x[0] > 0).LogicalNot()]),
            Split(cmp, 0, 2, 3), Split(cmp, 6, 2, 3));
        Forward("sign floor", (c, x) => Torch.Stack([x[0].Sign(), (x[0] * 10).Floor()]), Distinct(2, 3));
        Forward("argmax argmin", (c, x) => Torch.Stack([x[0].ArgMax(1), x[0].ArgMin(1), x[0].ArgMax(0, keepDim: true).Flatten().Narrow(0, 0, 3)]), Distinct(3, 4));
        Forward("copy_ add_ mul_", (c, x) =>
        {
            var t = Torch.Zeros([2, 3], c.DType, c.Device).CopyFrom(x[0]);
            return t.Add_(x[1], 0.5).Mul_(-2);
        }, U(2, 3), U(2, 3));
        Forward("detach", (c, x) => x[0].Detach() * 2, U(2, 3));
        Forward("sgd step with nesterov momentum and weight decay", (c, x) =>
        {
            var p = x[0].Detach().Clone();
            using var sgd = new Sgd([p], 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true);
            sgd.Step([x[1]]);
            sgd.Step([x[1] * 0.5]);
            return p;
        }, U(2, 3), U(2, 3));
        Forward("adam step with weight decay", (c, x) =>
        {
            var p = x[0].Detach().Clone();
            using var adam = new Adam([p], 0.01, weightDecay: 0.01);
            adam.Step([x[1]]);
            adam.Step([x[1] * -0.5]);
            return p;
        }, U(2, 3), U(2, 3));
        Forward("batch_norm updates its running statistics", (c, x) =>
        {
            var mean = c.Zeros(3);
            var var_ = c.Ones(3);
            F.BatchNorm(x[0], mean, var_, null, null, training: true, momentum: 0.3);
            return Torch.Cat([mean, var_]);
        }, U(4, 3, 2, 2));

        // ---- random draws: the streams differ per device, so properties are compared, not values ----
        Forward("rand in [0, 1), randn moments, randint in range", (c, x) =>
        {
            using var g = new Generator(5, c.Device);
            var u = Torch.Rand([4096], c.DType, c.Device, g);
            var n = Torch.Randn([4096], c.DType, c.Device, g);
            var i = Torch.RandInt(3, 7, [4096], ScalarType.Int64, c.Device, g);
            return Torch.Stack([
                (u >= 0).LogicalAnd(u < 1).To(ScalarType.Float32).Min(), (n.Mean().Abs() < 0.1).To(ScalarType.Float32),
                ((n.Std() - 1).Abs() < 0.1).To(ScalarType.Float32), (i >= 3).LogicalAnd(i < 7).To(ScalarType.Float32).Min(),
                ((u.Mean() - 0.5).Abs() < 0.05).To(ScalarType.Float32)]);
        });
        Forward("dropout training: kept entries scaled, gradient through the same mask", (c, x) =>
        {
            using var g = new Generator(9, c.Device);
            var leaf = x[0].Detach().RequiresGrad_();
            var y = F.Dropout(leaf, 0.25, training: true, g);
            var grad = Torch.Grad(y.Sum(), leaf);
            var kept = y.Ne(0);
            var scaledRight = (y - leaf / 0.75).Abs().Lt(1e-5).LogicalOr(kept.LogicalNot());
            var gradRight = (grad - kept.To(c.DType) / 0.75).Abs().Lt(1e-5);
            var dropped = kept.LogicalNot().To(ScalarType.Float32).Mean();
            return Torch.Stack([scaledRight.To(ScalarType.Float32).Min(), gradRight.To(ScalarType.Float32).Min(),
                (dropped - 0.25).Abs().Lt(0.05).To(ScalarType.Float32)]);
        }, Pos(64, 64));
        return cases;
    }
}
