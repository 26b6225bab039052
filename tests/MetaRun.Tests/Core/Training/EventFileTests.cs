using System.Text;
using MetaRun.Training;

namespace MetaRun.Tests.Training;

public class EventFileTests
{
    // RFC 3720 (iSCSI) B.4 check values, and the usual "123456789" check value of CRC-32C.
    [Theory]
    [InlineData("123456789", 0xE3069283u)]
    [InlineData("", 0x00000000u)]
    public void Crc32CMatchesThePublishedCheckValuesOfText(string text, uint expected) =>
        Assert.Equal(expected, EventFile.Crc32C(Encoding.ASCII.GetBytes(text)));

    [Fact]
    public void Crc32CMatchesTheIscsiCheckValuesOfZerosOnesAndCountingBytes()
    {
        Assert.Equal(0x8A9136AAu, EventFile.Crc32C(new byte[32]));
        Assert.Equal(0x62A8AB43u, EventFile.Crc32C(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, EventFile.Crc32C(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
        Assert.Equal(0x113FDB5Cu, EventFile.Crc32C(Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray()));
    }

    [Fact]
    public void TheMaskRotatesRightByFifteenAndAddsTfRecordsConstant()
    {
        var crc = EventFile.Crc32C(Encoding.ASCII.GetBytes("123456789"));
        Assert.Equal(unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8u), EventFile.MaskedCrc32C(Encoding.ASCII.GetBytes("123456789")));
    }

    [Fact]
    public void TwoFilesOpenedInOneMillisecondGetDistinctNamesInWritingOrder()
    {
        var dir = TestPaths.NewTempDir("events");
        using var a = new EventFile(dir, "train");
        using var b = new EventFile(dir, "train");
        Assert.NotEqual(a.Path, b.Path);
        Assert.True(string.CompareOrdinal(a.Path, b.Path) < 0);
    }
}
