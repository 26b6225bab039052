using System.Text.RegularExpressions;
using MetaRun.Algorithms;

namespace MetaRun.Tests.Cli;

/// <summary>The README's promises that code can check.</summary>
public class ReadmeTests
{
    /// <summary>
    /// The names in backticks in the first column of the first table under the README's
    /// "## Algorithms" heading (a row may name several: `baseline`, `baseline++`).
    /// </summary>
    internal static IReadOnlyList<string> AlgorithmTableNames(string readme)
    {
        var lines = readme.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        var heading = Array.FindIndex(lines, l => l.Trim() == "## Algorithms");
        Assert.True(heading >= 0, "README.md has no '## Algorithms' heading");
        var names = new List<string>();
        var i = heading + 1;
        while (i < lines.Length && !lines[i].StartsWith('|'))
        {
            Assert.False(lines[i].StartsWith("## "), "the README's '## Algorithms' section has no table");
            i++;
        }
        Assert.True(i + 1 < lines.Length && Regex.IsMatch(lines[i + 1], @"^\|\s*:?-+"), "the Algorithms table has no header separator row");
        for (i += 2; i < lines.Length && lines[i].StartsWith('|'); i++)
        {
            var firstCell = lines[i].Split('|')[1];
            var inCell = Regex.Matches(firstCell, "`([^`]+)`").Select(m => m.Groups[1].Value).ToList();
            Assert.True(inCell.Count > 0, $"an Algorithms table row names no algorithm in backticks: {lines[i]}");
            names.AddRange(inCell);
        }
        return names;
    }

    [Fact]
    public void TheReadmeListsEveryRegisteredAlgorithmAndNoOther()
    {
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var listed = AlgorithmTableNames(readme);
        var registered = AlgorithmRegistry.Names.ToHashSet();

        Assert.Equal(listed.Count, listed.Distinct().Count());
        var missing = registered.Except(listed).OrderBy(n => n).ToList();
        var unknown = listed.Except(registered).OrderBy(n => n).ToList();
        Assert.True(missing.Count == 0 && unknown.Count == 0,
            $"README.md's Algorithms table and AlgorithmRegistry differ: missing from the README [{string.Join(", ", missing)}], " +
            $"not registered [{string.Join(", ", unknown)}]");
    }

    [Fact]
    public void TheAlgorithmTableParserSeesARemovedRow()
    {
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var withoutMldg = string.Join('\n', readme.Split('\n').Where(l => !l.StartsWith("| `mldg`")));
        Assert.Contains("mldg", AlgorithmTableNames(readme));
        Assert.DoesNotContain("mldg", AlgorithmTableNames(withoutMldg));
    }
}
