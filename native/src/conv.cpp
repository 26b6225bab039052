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

#include <ATen/Parallel.h>
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

// ---- one input channel per group: a batched network's first layer ----
// Each task's grey image against its own kernels is a grouped convolution with one input channel
// per group. oneDNN runs that shape on its gemm fallback, several times slower than the same work
// as separate convolutions (DNNL_VERBOSE, 8 tasks × 5 images of 28 × 28, 64 kernels of 3 × 3,
// stride 2: forward 0.23 ms, weight gradient 0.45 ms; one task at a time 8 × 0.015 and
// 8 × 0.011 ms). Here the forward and the weight (and bias) gradient are direct loops over each
// image's patches, in a fixed order; the input gradient, needed only when the input is not data,
// stays libtorch's. Both loops are linear in their differentiable input and each other's adjoint,
// so the double backward below reuses them.

// Whether the loops take this convolution. Not while a graph is recorded (a third derivative): they
// record nothing, where libtorch's ops are differentiable.
bool single_channel_groups(const at::Tensor& x, const at::Tensor& w, const Geometry& g) {
  return !at::GradMode::is_enabled() && x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) &&
         w.scalar_type() == x.scalar_type() && x.dim() == 4 && w.dim() == 4 && g.groups > 1 &&
         x.size(1) == g.groups && w.size(1) == 1 && w.size(0) % g.groups == 0 && g.dilation[0] == 1 &&
         g.dilation[1] == 1;
}

struct Patches {
  int64_t n, groups, h, w, out_per_group, kh, kw, sh, sw, ph, pw, oh, ow;
  int64_t k() const { return kh * kw; }
  int64_t s() const { return oh * ow; }
};

Patches patches_of(const at::Tensor& x, const at::Tensor& w, const Geometry& g) {
  const int64_t h = x.size(2), wd = x.size(3), kh = w.size(2), kw = w.size(3);
  const int64_t oh = (h + 2 * g.padding[0] - kh) / g.stride[0] + 1, ow = (wd + 2 * g.padding[1] - kw) / g.stride[1] + 1;
  return {x.size(0), g.groups, h, wd, w.size(0) / g.groups, kh, kw, g.stride[0], g.stride[1], g.padding[0], g.padding[1], oh, ow};
}

// One image's patches as rows: P[k][p] = the image's value under kernel tap k at output position p (0 outside).
template <typename scalar_t>
void gather(const scalar_t* image, scalar_t* P, const Patches& d) {
  for (int64_t i = 0; i < d.kh; i++)
    for (int64_t j = 0; j < d.kw; j++) {
      scalar_t* row = P + (i * d.kw + j) * d.s();
      for (int64_t y = 0; y < d.oh; y++) {
        const int64_t iy = y * d.sh - d.ph + i;
        for (int64_t x = 0; x < d.ow; x++) {
          const int64_t ix = x * d.sw - d.pw + j;
          row[y * d.ow + x] = iy >= 0 && iy < d.h && ix >= 0 && ix < d.w ? image[iy * d.w + ix] : scalar_t(0);
        }
      }
    }
}

// Blocks of 64 values: four vectors of 16 floats, four independent chains of multiply-adds (one
// vector's chain waits on the multiply-add latency each step); then blocks of 16, then single values.
constexpr int64_t kBlock = 64;

// y[p..p+B) = bias + Σ_t wk[t]·P[t][p..p+B), the taps in a fixed order.
template <int64_t B, typename scalar_t>
__attribute__((always_inline)) inline void combine_block(scalar_t* y, const scalar_t* P, const scalar_t* wk, scalar_t bias, int64_t k, int64_t s) {
  scalar_t acc[B];
  for (int64_t l = 0; l < B; l++) acc[l] = bias;
  for (int64_t t = 0; t < k; t++) {
    const scalar_t c = wk[t];
    const scalar_t* row = P + t * s;
    for (int64_t l = 0; l < B; l++) acc[l] += c * row[l];
  }
  for (int64_t l = 0; l < B; l++) y[l] = acc[l];
}

// y[p] = bias + Σ_t wk[t]·P[t][p] for every position p. Cloned per instruction set: the library is
// built for plain x86-64.
template <typename scalar_t>
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void combine_rows(scalar_t* y, const scalar_t* P, const scalar_t* wk, scalar_t bias, int64_t k, int64_t s) {
  int64_t p = 0;
  for (; p + kBlock <= s; p += kBlock) combine_block<kBlock>(y + p, P + p, wk, bias, k, s);
  for (; p + 16 <= s; p += 16) combine_block<16>(y + p, P + p, wk, bias, k, s);
  for (; p < s; p++) combine_block<1>(y + p, P + p, wk, bias, k, s);
}

// out[c] = Σ over images i and positions p of gy_i[p]·P_i[c][p] for c < Taps (P_i at P + i·patch,
// rows s apart) and, with Bias, out[Taps] = Σ gy_i[p]. Each gy block is loaded once for all taps;
// the sums run in 16 lanes (independent chains, in registers: Taps is a constant), added into
// double every 4096 values or so, in an order fixed by the shape.
template <int64_t Taps, bool Bias, typename scalar_t>
__attribute__((always_inline)) inline void dot_block(double* out, const scalar_t* gy, int64_t gy_stride, const scalar_t* P, int64_t patch, int64_t n,
                      int64_t s) {
  constexpr int64_t R = Taps + (Bias ? 1 : 0);
  scalar_t acc[R][16] = {};
  double total[R] = {};
  int64_t pending = 0;
  for (int64_t i = 0; i < n; i++) {
    const scalar_t* g = gy + i * gy_stride;
    const scalar_t* rows = P + i * patch;
    int64_t p = 0;
    for (; p + 16 <= s; p += 16)
      for (int64_t l = 0; l < 16; l++) {
        const scalar_t v = g[p + l];
        for (int64_t c = 0; c < Taps; c++) acc[c][l] += v * rows[c * s + p + l];
        if (Bias) acc[R - 1][l] += v;
      }
    for (int64_t l = 0; p < s; p++, l++) {
      for (int64_t c = 0; c < Taps; c++) acc[c][l] += g[p] * rows[c * s + p];
      if (Bias) acc[R - 1][l] += g[p];
    }
    if ((pending += s) >= 4096 || i == n - 1) {
      for (int64_t c = 0; c < R; c++)
        for (int64_t l = 0; l < 16; l++) total[c] += acc[c][l], acc[c][l] = 0;
      pending = 0;
    }
  }
  for (int64_t c = 0; c < R; c++) out[c] = total[c];
}

// The weight and bias sums of one output channel: 3 × 3 kernels in one pass over gy, others a tap at
// a time. Cloned per instruction set: the library is built for plain x86-64.
template <typename scalar_t>
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void dot_rows(scalar_t* gw, scalar_t* gb, const scalar_t* gy, int64_t gy_stride, const scalar_t* P, int64_t patch,
              int64_t k, int64_t n, int64_t s) {
  double sums[10];
  if (k == 9) {
    dot_block<9, true>(sums, gy, gy_stride, P, patch, n, s);
    for (int64_t t = 0; t < k; t++) gw[t] = static_cast<scalar_t>(sums[t]);
    *gb = static_cast<scalar_t>(sums[k]);
    return;
  }
  for (int64_t t = 0; t < k; t++) {
    dot_block<1, false>(sums, gy, gy_stride, P + t * s, patch, n, s);
    gw[t] = static_cast<scalar_t>(sums[0]);
  }
  dot_block<0, true>(sums, gy, gy_stride, P, patch, n, s);
  *gb = static_cast<scalar_t>(sums[0]);
}

// conv(x, w) + b for x [N, G, H, W] and w [G·O, 1, KH, KW] (b may be empty).
at::Tensor single_channel_forward(const at::Tensor& x_, const at::Tensor& w_, const at::Tensor& b_, const Geometry& g) {
  const auto x = x_.contiguous(), w = w_.contiguous();
  const auto b = b_.defined() && b_.numel() > 0 ? b_.contiguous() : at::Tensor();
  const auto d = patches_of(x, w, g);
  auto y = at::empty({d.n, d.groups * d.out_per_group, d.oh, d.ow}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "metarun_single_channel_conv", [&] {
    const scalar_t *X = x.data_ptr<scalar_t>(), *W = w.data_ptr<scalar_t>();
    const scalar_t* B = b.defined() ? b.data_ptr<scalar_t>() : nullptr;
    scalar_t* Y = y.data_ptr<scalar_t>();
    at::parallel_for(0, d.n * d.groups, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> P(d.k() * d.s());
      for (int64_t image = begin; image < end; image++) {
        gather(X + image * d.h * d.w, P.data(), d);
        const int64_t group = image % d.groups;
        for (int64_t o = 0; o < d.out_per_group; o++) {
          const int64_t channel = group * d.out_per_group + o;
          combine_rows(Y + (image * d.out_per_group + o) * d.s(), P.data(), W + channel * d.k(),
                       B ? B[channel] : scalar_t(0), d.k(), d.s());
        }
      }
    });
  });
  return y;
}

// The weight and bias gradients of the forward above at gy: each a sum over images and positions.
std::pair<at::Tensor, at::Tensor> single_channel_weight_grad(const at::Tensor& gy_, const at::Tensor& x_,
                                                             const at::Tensor& w, const Geometry& g) {
  const auto x = x_.contiguous(), gy = gy_.contiguous();
  const auto d = patches_of(x, w, g);
  auto gw = at::empty(w.sizes(), w.options()), gb = at::empty({w.size(0)}, w.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "metarun_single_channel_conv_weight_grad", [&] {
    const scalar_t *X = x.data_ptr<scalar_t>(), *GY = gy.data_ptr<scalar_t>();
    scalar_t *GW = gw.data_ptr<scalar_t>(), *GB = gb.data_ptr<scalar_t>();
    // A group's patches for all its images at once, so each sum runs over all of them before its one reduction.
    at::parallel_for(0, d.groups, 1, [&](int64_t begin, int64_t end) {
      const int64_t patch = d.k() * d.s();
      std::vector<scalar_t> P(d.n * patch);
      for (int64_t group = begin; group < end; group++) {
        for (int64_t i = 0; i < d.n; i++) gather(X + (i * d.groups + group) * d.h * d.w, P.data() + i * patch, d);
        for (int64_t o = 0; o < d.out_per_group; o++) {
          const int64_t channel = group * d.out_per_group + o;
          dot_rows(GW + channel * d.k(), GB + channel, GY + channel * d.s(), d.groups * d.out_per_group * d.s(), P.data(),
                   patch, d.k(), d.n, d.s());
        }
      }
    });
  });
  return {gw, gb};
}

// The convolution's forward: the loop above where it applies, else libtorch's (oneDNN on the CPU).
at::Tensor convolve(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const Geometry& g) {
  if (single_channel_groups(x, w, g)) return single_channel_forward(x, w, b, g);
  return at::conv2d(x, w, b.defined() && b.numel() > 0 ? c10::optional<at::Tensor>(b) : c10::nullopt, g.stride,
                    g.padding, g.dilation, g.groups);
}

// The first backward with the loops above where they apply: the input gradient, when asked for, from libtorch.
std::tuple<at::Tensor, at::Tensor, at::Tensor> convolve_backward(const at::Tensor& gy, const at::Tensor& x,
                                                                 const at::Tensor& w, const Geometry& g, bool bias,
                                                                 std::array<bool, 3> mask) {
  if (!single_channel_groups(x, w, g)) return backward_of(gy, x, w, g, bias, mask);
  at::Tensor gx, gw, gb;
  if (mask[0]) gx = std::get<0>(backward_of(gy, x, w, g, false, {true, false, false}));
  if (mask[1] || mask[2]) std::tie(gw, gb) = single_channel_weight_grad(gy, x, w, g);
  return {gx, mask[1] ? gw : at::Tensor(), mask[2] && bias ? gb : at::Tensor()};
}

// (gy, x, w) → (gx, gw, gb), differentiable through the formulas above.
struct ConvolutionBackward : public torch::autograd::Function<ConvolutionBackward> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& gy, const at::Tensor& x, const at::Tensor& w,
                               std::vector<int64_t> stride, std::vector<int64_t> padding,
                               std::vector<int64_t> dilation, int64_t groups, bool bias) {
    // Every output defined, even the input gradient of a layer whose input is data (conv1, a
    // small convolution): a custom function's outputs may not be undefined.
    // Zeros for data's: nothing reads them, and the first layer's input gradient is not cheap.
    const Geometry g{stride, padding, dilation, groups};
    auto r = convolve_backward(gy, x, w, g, true, {x.requires_grad(), true, true});
    ctx->save_for_backward({gy, x, w});
    remember(ctx, g);
    ctx->saved_data["bias"] = bias;
    return {x.requires_grad() ? std::get<0>(r) : at::zeros_like(x), std::get<1>(r), std::get<2>(r)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &gy = saved[0], &x = saved[1], &w = saved[2];
    const auto g = geometry(ctx);
    const auto &ggx = grads[0], &ggw = grads[1], &ggb = grads[2];
    at::Tensor dgy, dx, dw;
    auto add = [](at::Tensor& sum, const at::Tensor& t) { sum = sum.defined() ? sum + t : t; };
    if (ggx.defined()) {
      add(dgy, convolve(ggx, w, {}, g));
      dw = std::get<1>(convolve_backward(gy, ggx, w, g, false, {false, true, false}));
    }
    if (ggw.defined()) {
      add(dgy, convolve(x, ggw, {}, g));
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
    ctx->saved_data["bias"] = b.numel() > 0;
    return convolve(x, w, b, {stride, padding, dilation, groups});
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
      auto t = convolve_backward(gy, saved[0], saved[1], g, bias, {input_grad, true, bias});
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
struct SharedKernelConvolution : public torch::autograd::Function<SharedKernelConvolution> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                            int64_t groups) {
    const int64_t tasks = w.size(0);
    const auto xc = x.contiguous();
    const auto batch = xc.view({x.size(0) * tasks, x.size(1) / tasks, x.size(2), x.size(3)});
    const bool bias = b.numel() > 0;
    auto y = at::conv2d(batch, w[0], bias ? c10::optional<at::Tensor>(b[0]) : c10::nullopt, stride, padding, dilation,
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
        const auto batch = x.view({x.size(0) * tasks, x.size(1) / tasks, x.size(2), x.size(3)});
        const auto gyb = gy.reshape({gy.size(0) * tasks, out, gy.size(2), gy.size(3)});
        gx = std::get<0>(backward_of(gyb, batch, w[0], {g.stride, g.padding, g.dilation, g.groups / tasks}, false,
                                     {true, false, false}))
                 .view(x.sizes());
      }
      // The grouped weight gradient reads only the kernels' shape.
      std::tie(std::ignore, gw, gb) = convolve_backward(gy, x, at::empty(grouped, w.options()), g, bias, {false, true, bias});
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
  // A custom function's inputs may not be undefined: no bias is an empty tensor.
  return Convolution::apply(x, w, b.has_value() ? *b : at::empty({0}, w.options()), stride, padding, dilation, groups);
}

at::Tensor conv2d_tasks(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                        std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                        int64_t groups) {
  const int64_t tasks = w.size(0);
  TORCH_CHECK(groups % tasks == 0, "per-task kernels of ", tasks, " tasks need groups a multiple of ", tasks, ", not ", groups);
  const bool shared = w.stride(0) == 0 && (!b.has_value() || b->stride(0) == 0);
  if (shared) return SharedKernelConvolution::apply(x, w, b.has_value() ? *b : at::empty({0}, w.options()), stride, padding, dilation, groups);
  const std::vector<int64_t> grouped{tasks * w.size(1), w.size(2), w.size(3), w.size(4)};
  return conv2d_grouped(x, w.reshape(grouped), b.has_value() ? c10::optional<at::Tensor>(b->reshape({-1})) : c10::nullopt,
                        stride, padding, dilation, groups);
}

}  // namespace metarun
