using System.Globalization;

namespace MetaRun.Config;

/// <summary>
/// Numbers given on the command line, read exactly as in a YAML config: invariant digits, a
/// decimal point, no thousands separators ("0,1" is not 1), finite, within the key's range. The
/// error names the option and the expected form in words.
/// </summary>
public static class OptionNumbers
{
    /// <summary>A whole number between <paramref name="min"/> and <paramref name="max"/>, or the error to show.</summary>
    public static (long Value, string? Error) Integer(string option, string text, long min, long max)
    {
        var t = text.Trim();
        if (!long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
            return (0, t.Length > 0 && t.TrimStart('-', '+').All(char.IsAsciiDigit)
                ? $"{option} {text}: too large; it must be between {Show(min)} and {Show(max)}"
                : $"{option} '{text}': expected a whole number written with digits only (like 1000), between {Show(min)} and {Show(max)}");
        if (v < min || v > max) return (0, $"{option} {text}: it must be between {Show(min)} and {Show(max)}");
        return (v, null);
    }

    /// <summary>A finite decimal number between <paramref name="min"/> and <paramref name="max"/>, or the error to show.</summary>
    public static (double Value, string? Error) Decimal(string option, string text, double min, double max)
    {
        var t = text.Trim();
        if (!double.TryParse(t, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
            return (0, $"{option} '{text}': expected a number written with a decimal point and no separators (like 0.1)");
        if (v < min || v > max) return (0, $"{option} {text}: it must be between {min.ToString(CultureInfo.InvariantCulture)} and {max.ToString(CultureInfo.InvariantCulture)}");
        return (v, null);
    }

    private static string Show(long n) => n.ToString(CultureInfo.InvariantCulture);
}
