// Batch norm with the batch's own statistics, as MAML's networks use it, with a double backward
// written out per channel. libtorch's own double backward (batchnorm_double_backward) is a
// composite of some thirty whole-tensor elementwise ops; on the CPU it was about 45% of a
// second-order MAML iteration, and more when a meta-batch's tasks run side by side (tensors of
// megabytes streamed from memory thirty times). Here the forward and the first backward are
// libtorch's fused kernels, and the backward of the backward reads each channel's values twice
// (its sums, then its outputs) while they are in cache. The formulas are derived in the comment
// of double_backward_cpu; `check ops` checks them against finite differences, and a test against
// libtorch's own double backward.
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Per channel c of x [N, C, *] (m values): x̂ = (x − μ)·r with the forward's mean μ and r = 1/√(σ² + ε);
// the first backward is gx = γ r D, D = gy − A − x̂ B, A = mean(gy), B = mean(gy x̂), gγ = m B, gβ = m A.
// Given the cotangents u of gx, a of gγ and b of gβ, with Ū = mean(u), V = mean(u x̂), P = Σ u D:
//   ∂/∂gy = γ r (u − Ū − x̂ V) + a x̂ + b
//   ∂/∂x  = −γ r² (P x̂ / m + V D + B (u − Ū − x̂ V)) + a r D
//   ∂/∂γ  = r P
// (from ∂x̂_j/∂x_i = r(δ_ij − 1/m − x̂_i x̂_j/m) and ∂r/∂x_i = −r² x̂_i / m).
template <typename scalar_t>
void double_backward_cpu(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& w, const at::Tensor& mean,
                         const at::Tensor& invstd, const at::Tensor& u, const at::Tensor& a, const at::Tensor& b,
                         at::Tensor& ggy, at::Tensor& gx, at::Tensor& gw) {
  const int64_t n = x.size(0), c = x.size(1), s = x.numel() / (n * c), m = n * s;
  const scalar_t* GY = gy.data_ptr<scalar_t>();
  const scalar_t* X = x.data_ptr<scalar_t>();
  const scalar_t* U = u.defined() ? u.data_ptr<scalar_t>() : nullptr;
  const scalar_t* W = w.data_ptr<scalar_t>();
  const scalar_t* MU = mean.data_ptr<scalar_t>();
  const scalar_t* R = invstd.data_ptr<scalar_t>();
  const scalar_t* AA = a.defined() ? a.data_ptr<scalar_t>() : nullptr;
  const scalar_t* BB = b.defined() ? b.data_ptr<scalar_t>() : nullptr;
  scalar_t* GGY = ggy.data_ptr<scalar_t>();
  scalar_t* GX = gx.data_ptr<scalar_t>();
  scalar_t* GW = gw.data_ptr<scalar_t>();
  // One channel per thread at a time, its sums in one fixed order: the same bits on any thread count.
  at::parallel_for(0, c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ch++) {
      const double mu = MU[ch], r = R[ch], gamma = W[ch];
      double sgy = 0, sgyx = 0, su = 0, sux = 0, sugy = 0;
      for (int64_t i = 0; i < n; i++) {
        const int64_t o = (i * c + ch) * s;
        for (int64_t k = 0; k < s; k++) {
          const double xh = (X[o + k] - mu) * r, g = GY[o + k];
          sgy += g;
          sgyx += g * xh;
          if (U) {
            const double uu = U[o + k];
            su += uu;
            sux += uu * xh;
            sugy += uu * g;
          }
        }
      }
      const double A = sgy / m, B = sgyx / m, Ubar = su / m, V = sux / m;
      const double P = sugy - A * su - B * sux;
      const double av = AA ? AA[ch] : 0.0, bv = BB ? BB[ch] : 0.0;
      const double gr = gamma * r, gr2 = gamma * r * r;
      for (int64_t i = 0; i < n; i++) {
        const int64_t o = (i * c + ch) * s;
        for (int64_t k = 0; k < s; k++) {
          const double xh = (X[o + k] - mu) * r, g = GY[o + k];
          const double uu = U ? U[o + k] : 0.0;
          const double d = g - A - xh * B, e = uu - Ubar - xh * V;
          GGY[o + k] = static_cast<scalar_t>(gr * e + av * xh + bv);
          GX[o + k] = static_cast<scalar_t>(-gr2 * (P * xh / m + V * d + B * e) + av * r * d);
        }
      }
      GW[ch] = static_cast<scalar_t>(r * P);
    }
  });
}

// The same formulas as whole-tensor ops: differentiable, for a third derivative (rare: no learner
// takes one today) and for tensors the loops above do not take.
// The statistics are recomputed from x here, so that a derivative of these formulas sees their dependence on x.
variable_list double_backward_composite(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& w, double eps,
                                        at::Tensor u, at::Tensor a, at::Tensor b) {
  std::vector<int64_t> shape(x.dim(), 1), dims{0};
  shape[1] = x.size(1);
  for (int64_t d = 2; d < x.dim(); d++) dims.push_back(d);
  const double m = static_cast<double>(x.numel() / x.size(1));
  auto per = [&](const at::Tensor& t) { return t.to(x.scalar_type()).reshape(shape); };
  auto red = [&](const at::Tensor& t) { return t.sum(dims, true); };
  const auto centred = x - x.mean(dims, true);
  const auto r = (centred.square().mean(dims, true) + eps).rsqrt(), gamma = per(w);
  const auto xh = centred * r;
  const auto A = red(gy) / m, B = red(gy * xh) / m;
  const auto d = gy - A - xh * B;
  if (!u.defined()) u = at::zeros_like(x);
  const auto Ubar = red(u) / m, V = red(u * xh) / m;
  const auto e = u - Ubar - xh * V;
  const auto P = red(u * d);
  auto ggy = gamma * r * e;
  auto gx = -gamma * r * r * (P * xh / m + V * d + B * e);
  if (a.defined()) {
    ggy = ggy + per(a) * xh;
    gx = gx + per(a) * r * d;
  }
  if (b.defined()) ggy = ggy + per(b);
  return {ggy, gx, (r * P).reshape({-1})};
}

// (gy, x, γ, μ, r) → (gx, gγ, gβ): the first backward, itself differentiable through the formulas above.
struct BatchNormBackward : public torch::autograd::Function<BatchNormBackward> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& gy, const at::Tensor& x, const at::Tensor& w,
                               const at::Tensor& mean, const at::Tensor& invstd, double eps) {
    auto r = at::native_batch_norm_backward(gy, x, w, {}, {}, mean, invstd, true, eps, {true, true, true});
    ctx->save_for_backward({gy, x, w, mean, invstd});
    ctx->saved_data["eps"] = eps;
    return {std::get<0>(r), std::get<1>(r), std::get<2>(r)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &gy = saved[0], &x = saved[1], &w = saved[2], &mean = saved[3], &invstd = saved[4];
    auto u = grads[0], a = grads[1], b = grads[2];
    variable_list out;
    const bool fused = !at::GradMode::is_enabled() && x.device().is_cpu() && mean.scalar_type() == x.scalar_type() &&
                       invstd.scalar_type() == x.scalar_type() && w.scalar_type() == x.scalar_type() &&
                       (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
    if (fused) {
      const auto xc = x.contiguous(), gyc = gy.contiguous(), wc = w.contiguous();
      const auto uc = u.defined() ? u.contiguous() : u;
      const auto ac = a.defined() ? a.contiguous() : a, bc = b.defined() ? b.contiguous() : b;
      auto ggy = at::empty_like(xc), gx = at::empty_like(xc), gw = at::empty_like(wc);
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "metarun_batch_norm_double_backward", [&] {
        double_backward_cpu<scalar_t>(gyc, xc, wc, mean.contiguous(), invstd.contiguous(), uc, ac, bc, ggy, gx, gw);
      });
      out = {ggy, gx, gw};
    } else {
      out = double_backward_composite(gy, x, w, ctx->saved_data["eps"].toDouble(), u, a, b);
    }
    return {out[0], out[1], out[2], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct BatchNormTrain : public torch::autograd::Function<BatchNormTrain> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            double eps) {
    auto r = at::native_batch_norm(x, w, b, {}, {}, true, 0.0, eps);
    ctx->save_for_backward({x, w, std::get<1>(r), std::get<2>(r)});
    ctx->saved_data["eps"] = eps;
    return std::get<0>(r);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const double eps = ctx->saved_data["eps"].toDouble();
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    // Without grad mode (no create_graph) apply records nothing: it is libtorch's fused backward.
    auto g = BatchNormBackward::apply(grads[0], saved[0], saved[1], saved[2], saved[3], eps);
    return {g[0], g[1], g[2], at::Tensor()};
  }
};

}  // namespace

namespace metarun {

// Batch norm with the batch's statistics and an affine γ, β, on the CPU through the op above;
// anywhere else (CUDA, no affine, running statistics to update) libtorch's own.
at::Tensor batch_norm_train(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  return BatchNormTrain::apply(x, w, b, eps);
}

}  // namespace metarun
