using System.CommandLine;
using MetaRun.Config;

namespace MetaRun.Cli;

/// <summary>Numeric options parsed by <see cref="OptionNumbers"/> (as in a config file), with errors in words.</summary>
public static class NumberOptions
{
    public static Option<int> Int(string name, string description, int min, int max, int defaultValue) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = r =>
        {
            var (v, error) = OptionNumbers.Integer(name, r.Tokens.Count > 0 ? r.Tokens[0].Value : "", min, max);
            if (error != null) r.AddError(error);
            return (int)v;
        },
    };

    public static Option<int?> OptionalInt(string name, string description, int min, int max) => new(name)
    {
        Description = description,
        CustomParser = r =>
        {
            var (v, error) = OptionNumbers.Integer(name, r.Tokens.Count > 0 ? r.Tokens[0].Value : "", min, max);
            if (error != null) r.AddError(error);
            return (int)v;
        },
    };

    public static Option<double?> OptionalDouble(string name, string description, double min, double max) => new(name)
    {
        Description = description,
        CustomParser = r =>
        {
            var (v, error) = OptionNumbers.Decimal(name, r.Tokens.Count > 0 ? r.Tokens[0].Value : "", min, max);
            if (error != null) r.AddError(error);
            return v;
        },
    };
}
