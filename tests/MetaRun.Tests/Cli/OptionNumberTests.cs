namespace MetaRun.Tests.Cli;

/// <summary>
/// Numbers on the command line are read as in a config file: no thousands separators (so
/// "--epsilon 0,1" is not ε = 1), finite, within the config key's bounds; a bad one is exit 2
/// naming the option and the expected form in words, never a .NET type name.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class OptionNumberTests
{
    public static TheoryData<string[], string> Bad => new()
    {
        { ["eval", "--checkpoint", "x", "--attack", "fgsm", "--epsilon", "0,1"], "--epsilon '0,1': expected a number written with a decimal point" },
        { ["eval", "--checkpoint", "x", "--attack", "fgsm", "--epsilon", "abc"], "--epsilon 'abc'" },
        { ["eval", "--checkpoint", "x", "--attack", "pgd", "--epsilon", "0.1", "--steps", "NaN"], "--steps 'NaN': expected a whole number" },
        { ["eval", "--checkpoint", "x", "--attack", "pgd", "--epsilon", "0.1", "--steps", "99999999999"], "--steps 99999999999" },
        { ["eval", "--checkpoint", "x", "--episodes", "1,000"], "--episodes '1,000': expected a whole number written with digits only" },
        { ["eval", "--checkpoint", "x", "--episodes", "2147483647"], "--episodes 2147483647: it must be between 1 and 1000000" },
        { ["adapt", "--checkpoint", "x", "--support", "y", "--steps", "1e3"], "--steps '1e3'" },
    };

    [Theory]
    [MemberData(nameof(Bad))]
    public void ABadNumberNamesTheOptionAndTheForm(string[] args, string expected)
    {
        var (code, output, err) = CliRunner.Run(args);
        Assert.True(code == 2, $"exit {code}: {output}{err}");
        Assert.Contains(expected, err);
        Assert.DoesNotContain("System.", err);
    }
}
