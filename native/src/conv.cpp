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

// oneDNN runs a grouped convolution whose groups have few input channels (a meta-batch's first
// layer: one channel per task for Omniglot, three for RGB) through its gemm fallback, with a copy
// of the input in front: 1.8 ms for 8 tasks' first layer where 8 ungrouped calls take 0.3 ms
// (DNNL_VERBOSE=1 on `bench --set execution=batched`). Such convolutions run group by group.
bool apart(const at::Tensor& x, const Geometry& g) {
  return g.groups > 1 && x.device().is_cpu() && x.size(1) / g.groups < 16;
}

at::Tensor conv(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b, const Geometry& g) {
  if (!apart(x, g)) return at::conv2d(x, w, b, g.stride, g.padding, g.dilation, g.groups);
  const int64_t in = x.size(1) / g.groups, out = w.size(0) / g.groups;
  std::vector<at::Tensor> parts;
  for (int64_t k = 0; k < g.groups; k++)
    parts.push_back(at::conv2d(x.narrow(1, k * in, in), w.narrow(0, k * out, out),
                               b.has_value() ? c10::optional<at::Tensor>(b->narrow(0, k * out, out)) : c10::nullopt,
                               g.stride, g.padding, g.dilation, 1));
  return at::cat(parts, 1);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_of(const at::Tensor& gy, const at::Tensor& x,
                                                           const at::Tensor& w, const Geometry& g, bool bias,
                                                           std::array<bool, 3> mask) {
  if (!apart(x, g)) {
    const std::vector<int64_t> bias_sizes{w.size(0)};
    return at::convolution_backward(gy, x, w, bias ? c10::OptionalIntArrayRef(bias_sizes) : c10::nullopt, g.stride,
                                    g.padding, g.dilation, false, {0, 0}, g.groups, mask);
  }
  const int64_t in = x.size(1) / g.groups, out = w.size(0) / g.groups;
  const std::vector<int64_t> bias_sizes{out};
  std::vector<at::Tensor> dx, dw, db;
  for (int64_t k = 0; k < g.groups; k++) {
    auto r = at::convolution_backward(gy.narrow(1, k * out, out), x.narrow(1, k * in, in), w.narrow(0, k * out, out),
                                      bias ? c10::OptionalIntArrayRef(bias_sizes) : c10::nullopt, g.stride, g.padding,
                                      g.dilation, false, {0, 0}, 1, mask);
    if (mask[0]) dx.push_back(std::get<0>(r));
    if (mask[1]) dw.push_back(std::get<1>(r));
    if (mask[2] && bias) db.push_back(std::get<2>(r));
  }
  auto join = [](std::vector<at::Tensor>& v, int64_t dim) { return v.empty() ? at::Tensor() : at::cat(v, dim); };
  return {join(dx, 1), join(dw, 0), join(db, 0)};
}

// (gy, x, w) → (gx, gw, gb), differentiable through the formulas above.
struct ConvolutionBackward : public torch::autograd::Function<ConvolutionBackward> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& gy, const at::Tensor& x, const at::Tensor& w,
                               std::vector<int64_t> stride, std::vector<int64_t> padding,
                               std::vector<int64_t> dilation, int64_t groups, bool bias) {
    // Every output defined, even the input gradient of a layer whose input is data (conv1, a
    // small convolution): a custom function's outputs may not be undefined.
    const Geometry g{stride, padding, dilation, groups};
    auto r = backward_of(gy, x, w, g, true, {true, true, true});
    ctx->save_for_backward({gy, x, w});
    remember(ctx, g);
    ctx->saved_data["bias"] = bias;
    return {std::get<0>(r), std::get<1>(r), std::get<2>(r)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &gy = saved[0], &x = saved[1], &w = saved[2];
    const auto g = geometry(ctx);
    const auto &ggx = grads[0], &ggw = grads[1], &ggb = grads[2];
    at::Tensor dgy, dx, dw;
    auto add = [](at::Tensor& sum, const at::Tensor& t) { sum = sum.defined() ? sum + t : t; };
    if (ggx.defined()) {
      add(dgy, conv(ggx, w, c10::nullopt, g));
      dw = std::get<1>(backward_of(gy, ggx, w, g, false, {false, true, false}));
    }
    if (ggw.defined()) {
      add(dgy, conv(x, ggw, c10::nullopt, g));
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
    return conv(x, w, bias ? c10::optional<at::Tensor>(b) : c10::nullopt, {stride, padding, dilation, groups});
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

}  // namespace

namespace metarun {

at::Tensor conv2d_grouped(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                          std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                          int64_t groups) {
  // A custom function's inputs may not be undefined: no bias is an empty tensor.
  return Convolution::apply(x, w, b.has_value() ? *b : at::empty({0}, w.options()), stride, padding, dilation, groups);
}

}  // namespace metarun
