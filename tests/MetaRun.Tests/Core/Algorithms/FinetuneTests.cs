using LibTorch;
using MetaRun.Algorithms;
using MetaRun.Config;
using static MetaRun.Tests.Algorithms.HandChecks;

namespace MetaRun.Tests.Algorithms;

public class FinetuneTests
{
    private static Finetune Make(MetaRun.Models.IModel model, int steps, FinetuneScope scope, double lr = 0.1) =>
        new(model, new Objective(false), new Baseline(model, new Objective(false), null, 16, lr, steps, adam: false, cosine: false), lr, steps, adam: false, scope);

    [Fact]
    public void Fine_tuning_the_whole_network_takes_sgd_steps_on_copies_with_a_fresh_head()
    {
        using var scope = Torch.NewScope();
        using var model = Tiny([4], outputs: 7);
        var task = TinyTask();
        var before = model.Parameters.Select(Values).ToArray();
        using var none = Make(model, 0, FinetuneScope.All);
        var start = none.AdaptTo(task).State.Select(kv => kv.Value).ToArray();
        // No steps: the body as trained and a fresh 2-way head (the episode's ways, not the training classes).
        Assert.Equal([2, 4], start[^2].Shape);
        for (var i = 0; i < 2; i++) Assert.Equal(before[i], Values(start[i]));

        // One step of SGD with momentum 0.9 and weight decay 0.001: w − lr·(∇L(w) + 0.001·w), every weight (the body too).
        var w = start.Select(t => t.Detach().Clone().RequiresGrad_()).ToArray();
        var loss = new Objective(false).Loss(model.Forward(task.SupportX, w), task.SupportY);
        var grads = Grad(loss, w);
        using var one = Make(model, 1, FinetuneScope.All);
        var adapted = one.AdaptTo(task).State.Select(kv => kv.Value).ToArray();
        for (var i = 0; i < w.Length; i++) Close(w[i].Detach() - (grads[i] + w[i].Detach() * 0.001) * 0.1, adapted[i]);
        Assert.True(Values(adapted[0]).Zip(before[0]).Any(p => p.First != p.Second), "the body did not change");
        // The model's own weights are untouched: episodes never affect one another.
        for (var i = 0; i < before.Length; i++) Assert.Equal(before[i], Values(model.Parameters[i]));
    }

    [Fact]
    public void Fine_tuning_the_head_leaves_the_body_as_trained()
    {
        using var scope = Torch.NewScope();
        using var model = Tiny([4], outputs: 7);
        var task = TinyTask();
        using var learner = Make(model, 5, FinetuneScope.Head);
        var state = learner.AdaptTo(task).State.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(Values(model.Parameters[0]), Values(state[model.ParameterNames[0]]));
        Assert.Equal([2, 4], state["head.weight"].Shape);
    }
}
