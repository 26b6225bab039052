// A 2-D convolution whose double backward (MAML's second-order term) runs grouped convolutions
// as single calls. libtorch's own (_convolution_double_backward) computes the weight part of a
// grouped convolution's double backward one group at a time and concatenates the results: with
// a meta-batch's tasks as the groups (execution: batched) that is 32 small convolutions, a
// transposed-convolution fallback and a cat per layer, about 40% of a batched iteration. The
// same terms as whole-tensor calls:
//   first backward    (gx, gw, gb) = B(gy, x, w)                      (at::convolution_backward)
//   its backward, given the cotangents (ggx, ggw, ggb):
//     ∂/∂gy = conv(ggx, w) + conv(x, ggw) + ggb
//     ∂/∂x  = the input gradient of conv(·, ggw) at gy              (B(gy, x, ggw)'s gx)
//     ∂/∂w  = the weight gradient of conv(ggx, ·) at gy             (B(gy, ggx, w)'s gw)
// all of them differentiable libtorch ops, so a third derivative still works.
#include "common.h"

#include <torch/csrc/autograd/custom_function.h>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Geometry {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;
};

Geometry geometry(AutogradContext* ctx) {
  return {ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
          ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["groups"].toInt()};
}

void remember(AutogradContext* ctx, const Geometry& g) {
  ctx->saved_data["stride"] = g.stride;
  ctx->saved_data["padding"] = g.padding;
  ctx->saved_data["dilation"] = g.dilation;
  ctx->saved_data["groups"] = g.groups;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_of(const at::Tensor& gy, const at::Tensor& x,
                                                           const at::Tensor& w, const Geometry& g, bool bias,
                                                           std::array<bool, 3> mask) {
  const std::vector<int64_t> bias_sizes{w.size(0)};
  return at::convolution_backward(gy, x, w, bias ? c10::OptionalIntArrayRef(bias_sizes) : c10::nullopt, g.stride,
                                  g.padding, g.dilation, false, {0, 0}, g.groups, mask);
}

// (gy, x, w) → (gx, gw, gb), differentiable through the formulas above.
struct ConvolutionBackward : public torch::autograd::Function<ConvolutionBackward> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& gy, const at::Tensor& x, const at::Tensor& w,
                               std::vector<int64_t> stride, std::vector<int64_t> padding,
                               std::vector<int64_t> dilation, int64_t groups, bool bias) {
    // Every output defined (a custom function's outputs may not be undefined), but where the input
    // is data (the first layer) its gradient is zeros: nothing reads it, and computing it is a
    // whole backward-data convolution (with one input channel per task, oneDNN's gemm fallback).
    const Geometry g{stride, padding, dilation, groups};
    const bool data = !x.requires_grad();
    auto r = backward_of(gy, x, w, g, true, {!data, true, true});
    ctx->save_for_backward({gy, x, w});
    remember(ctx, g);
    ctx->saved_data["bias"] = bias;
    return {data ? at::zeros_like(x) : std::get<0>(r), std::get<1>(r), std::get<2>(r)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &gy = saved[0], &x = saved[1], &w = saved[2];
    const auto g = geometry(ctx);
    const auto &ggx = grads[0], &ggw = grads[1], &ggb = grads[2];
    at::Tensor dgy, dx, dw;
    auto add = [](at::Tensor& sum, const at::Tensor& t) { sum = sum.defined() ? sum + t : t; };
    if (ggx.defined()) {
      add(dgy, at::conv2d(ggx, w, {}, g.stride, g.padding, g.dilation, g.groups));
      dw = std::get<1>(backward_of(gy, ggx, w, g, false, {false, true, false}));
    }
    if (ggw.defined()) {
      add(dgy, at::conv2d(x, ggw, {}, g.stride, g.padding, g.dilation, g.groups));
      if (x.requires_grad()) dx = std::get<0>(backward_of(gy, x, ggw, g, false, {true, false, false}));
    }
    if (ggb.defined() && ctx->saved_data["bias"].toBool()) add(dgy, ggb.reshape({1, -1, 1, 1}).expand_as(gy));
    return {dgy, dx, dw, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct Convolution : public torch::autograd::Function<Convolution> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                            int64_t groups) {
    ctx->save_for_backward({x, w});
    remember(ctx, {stride, padding, dilation, groups});
    const bool bias = b.numel() > 0;
    ctx->saved_data["bias"] = bias;
    return at::conv2d(x, w, bias ? c10::optional<at::Tensor>(b) : c10::nullopt, stride, padding, dilation, groups);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto g = geometry(ctx);
    const bool bias = ctx->saved_data["bias"].toBool();
    const bool input_grad = ctx->needs_input_grad(0);
    const auto& gy = grads[0];
    if (!gy.defined()) return variable_list(7);
    variable_list r;
    if (at::GradMode::is_enabled()) {
      r = ConvolutionBackward::apply(gy, saved[0], saved[1], g.stride, g.padding, g.dilation, g.groups, bias);
    } else {
      auto t = backward_of(gy, saved[0], saved[1], g, bias, {input_grad, true, bias});
      r = {std::get<0>(t), std::get<1>(t), std::get<2>(t)};
    }
    return {r[0], r[1], bias ? r[2] : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The first inner step's forward over a meta-batch: every task's kernels are the same θ (a view
// with stride 0 over the tasks), so the images [N, T·C, H, W] are one batch [N·T, C, H, W] (the same
// memory) of one ordinary convolution with θ: no per-task copies of the kernels for oneDNN to
// reorder, and its larger kernels (Python, one thread, conv4's second layer over 8 tasks × 5
// images, forward and input gradient: 2.0 ms against 2.3 ms grouped). Each task still gets its own
// weight gradient, from the grouped weight gradient; under create_graph (MAML's second order) the
// whole backward is the grouped convolution's, differentiable as above.
// A meta-batch's images [N, T·C, H, W] as one batch [N·T, C, H, W] of the tasks' images: the same memory.
at::Tensor as_task_batch(const at::Tensor& x, int64_t tasks) {
  return x.view({x.size(0) * tasks, x.size(1) / tasks, x.size(2), x.size(3)});
}

// A custom function's inputs may not be undefined: no bias is an empty tensor.
at::Tensor bias_or_empty(const c10::optional<at::Tensor>& b, const at::Tensor& w) {
  return b.has_value() ? *b : at::empty({0}, w.options());
}

struct SharedKernelConvolution : public torch::autograd::Function<SharedKernelConvolution> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                            int64_t groups) {
    const int64_t tasks = w.size(0);
    const auto xc = x.contiguous();
    const bool bias = b.numel() > 0;
    auto y = at::conv2d(as_task_batch(xc, tasks), w[0], bias ? c10::optional<at::Tensor>(b[0]) : c10::nullopt, stride, padding, dilation,
                        groups / tasks);
    ctx->save_for_backward({xc, w});
    remember(ctx, {stride, padding, dilation, groups});
    ctx->saved_data["bias"] = bias;
    return y.view({x.size(0), tasks * y.size(1), y.size(2), y.size(3)});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1];
    const auto g = geometry(ctx);
    const bool bias = ctx->saved_data["bias"].toBool();
    const auto& gy = grads[0];
    if (!gy.defined()) return variable_list(7);
    const int64_t tasks = w.size(0), out = w.size(1);
    const std::vector<int64_t> grouped{tasks * out, w.size(2), w.size(3), w.size(4)};
    at::Tensor gx, gw, gb;
    if (at::GradMode::is_enabled()) {
      auto r = ConvolutionBackward::apply(gy, x, w.reshape(grouped), g.stride, g.padding, g.dilation, g.groups, bias);
      gx = r[0], gw = r[1], gb = r[2];
    } else {
      if (ctx->needs_input_grad(0)) {
        const auto gyb = gy.reshape({gy.size(0) * tasks, out, gy.size(2), gy.size(3)});
        gx = std::get<0>(backward_of(gyb, as_task_batch(x, tasks), w[0], {g.stride, g.padding, g.dilation, g.groups / tasks}, false,
                                     {true, false, false}))
                 .view(x.sizes());
      }
      // The grouped weight gradient reads only the kernels' shape.
      std::tie(std::ignore, gw, gb) = backward_of(gy, x, at::empty(grouped, w.options()), g, bias, {false, true, bias});
    }
    return {gx, gw.view(w.sizes()), bias ? gb.view({tasks, out}) : at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

namespace metarun {

at::Tensor conv2d_grouped(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                          std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                          int64_t groups) {
  if (!x.device().is_cpu()) return at::conv2d(x, w, b, stride, padding, dilation, groups);
  return Convolution::apply(x, w, bias_or_empty(b, w), stride, padding, dilation, groups);
}

at::Tensor conv2d_tasks(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                        std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                        int64_t groups) {
  const int64_t tasks = w.size(0);
  TORCH_CHECK(groups % tasks == 0, "per-task kernels of ", tasks, " tasks need groups a multiple of ", tasks, ", not ", groups);
  const bool shared = w.stride(0) == 0 && (!b.has_value() || b->stride(0) == 0);
  if (shared && x.device().is_cpu())
    return SharedKernelConvolution::apply(x, w, bias_or_empty(b, w), stride, padding, dilation, groups);
  const std::vector<int64_t> grouped{tasks * w.size(1), w.size(2), w.size(3), w.size(4)};
  return conv2d_grouped(x, w.reshape(grouped), b.has_value() ? c10::optional<at::Tensor>(b->reshape({-1})) : c10::nullopt,
                        stride, padding, dilation, groups);
}

}  // namespace metarun
