using LibTorch;
using MetaRun.Models;

namespace MetaRun.Tests.Models;

public class ResNet12Tests
{
    [Fact]
    public void ResNet12HasTheBackbonesWeightCountAndA640WideEmbedding()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(1);
        using var model = new ResNet12([3, 84, 84], filters: 64, outputs: 5, g, Device.Cpu);
        // Per block c_in → c: three 3×3 convolutions (9·c_in·c + 2·9·c²), a 1×1 shortcut (c_in·c), four batch norms (8c).
        long Block(long cin, long c) => 9 * cin * c + 2 * 9 * c * c + cin * c + 8 * c;
        var body = Block(3, 64) + Block(64, 160) + Block(160, 320) + Block(320, 640);
        Assert.Equal(12_424_320, body);
        Assert.Equal(body, model.Parameters.Zip(model.Roles).Where(p => !p.Second.IsHead()).Sum(p => p.First.NumElements));
        Assert.Equal(640, model.Features);
        using var x = Torch.Randn([2, 3, 84, 84], generator: g);
        using (Torch.NoGrad())
        {
            Assert.Equal([2, 640], model.Embed(x, model.Parameters).Shape);
            Assert.Equal([2, 5], model.Forward(x, model.Parameters).Shape);
        }
    }
}
