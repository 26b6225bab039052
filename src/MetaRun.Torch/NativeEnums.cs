using static LibTorch.Native;

namespace LibTorch;

/// <summary>
/// The binding's enums that travel to native/ as integer codes, checked against the native library's
/// own enums (native/src/codes.h) before the first dispatch: a code added or dropped on one side
/// then fails with a <see cref="TorchException"/> naming the enum instead of silently running
/// another op. The values themselves are explicit on both sides, so neither depends on order.
/// </summary>
internal static class NativeEnums
{
    // The managed enum beside the name mr_enum_count knows its native counterpart by.
    private static readonly (Type Managed, string Native)[] Pairs =
    [
        (typeof(UnaryOp), "unary"),
        (typeof(BinaryOp), "binary"),
        (typeof(ReduceOp), "reduce"),
        (typeof(Reduction), "loss_reduction"),
        (typeof(InterpolationMode), "interpolation"),
        (typeof(ImageEncoding), "image_format"),
    ];

    // Set only once every pair matched; a mismatch leaves it unset, so every later dispatch throws too.
    private static volatile bool verified;

    /// <summary>Throws unless every enum matches its native counterpart; cheap after the first success.</summary>
    internal static void EnsureVerified()
    {
        if (verified) return;
        foreach (var (managed, native) in Pairs) Verify(managed, native);
        verified = true;
    }

    internal static IReadOnlyList<(Type Managed, string Native)> All => Pairs;

    /// <summary>The native count of the codes named <paramref name="native"/>.</summary>
    internal static int NativeCount(string native)
    {
        int n;
        try
        {
            n = mr_enum_count(native);
        }
        catch (EntryPointNotFoundException)
        {
            throw new TorchException("the native library has no mr_enum_count: it predates this binding; rebuild it (scripts/setup.sh)");
        }
        if (n < 0) ThrowLastError();
        return n;
    }

    private static void Verify(Type managed, string native)
    {
        var values = Enum.GetValues(managed).Cast<object>().Select(Convert.ToInt32).Order().ToArray();
        // Contiguous from 0 is what makes equal counts mean equal codes (with the values matched by name in the sources).
        if (!values.SequenceEqual(Enumerable.Range(0, values.Length)))
            throw new TorchException($"{managed.Name}'s values are not 0..{values.Length - 1}: the native codes are contiguous from 0");
        var count = NativeCount(native);
        if (count != values.Length)
            throw new TorchException($"{managed.Name} has {values.Length} members but the native library's '{native}' enum has {count} codes: " +
                $"src/MetaRun.Torch and native/src/codes.h disagree (or the native library is stale: rebuild it), and an op code could run the wrong op");
    }
}

/// <summary>Elementwise ops of one tensor (native Unary).</summary>
internal enum UnaryOp
{
    Neg = 0,
    Sqrt = 1,
    Exp = 2,
    Log = 3,
    Abs = 4,
    Relu = 5,
    Sigmoid = 6,
    Tanh = 7,
    Sign = 8,
    Reciprocal = 9,
    Square = 10,
    Floor = 11,
    LogicalNot = 12,
}

/// <summary>Broadcasting ops of two tensors, or of a tensor and a scalar (native Binary).</summary>
internal enum BinaryOp
{
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    Pow = 4,
    MatMul = 5,
    Maximum = 6,
    Minimum = 7,
    Eq = 8,
    Ne = 9,
    Lt = 10,
    Le = 11,
    Gt = 12,
    Ge = 13,
    And = 14,
    Or = 15,
}

/// <summary>Reductions over all or some dimensions (native Reduce).</summary>
internal enum ReduceOp
{
    Sum = 0,
    Mean = 1,
    Var = 2,
    VarBiased = 3,
    Amax = 4,
    Amin = 5,
    Std = 6,
}

/// <summary>What <see cref="Image"/> encodes to (native ImageFormat; not MetaRun.Data.ImageFormat, which is how a data set's files become inputs).</summary>
internal enum ImageEncoding
{
    Png = 0,
    Jpeg = 1,
    CmykJpeg = 2,
    ProgressiveJpeg = 3,
}
