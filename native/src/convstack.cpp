// A meta-batch's stack of convolution → batch norm → ReLU blocks, pooled by the mean over space
// (conv4 on Omniglot), as one op for a backward that is taken once (first order: FOMAML's passes,
// every algorithm's query pass, evaluation). Through libtorch each convolution takes plain tensors
// in and gives plain tensors out, so oneDNN reorders every activation into its blocked layout
// (nChw16c) and back, and the tasks' kernels and their gradients each time they are used: about a
// tenth of a batched FOMAML iteration (docs/performance.md), with batch norm and ReLU as separate
// passes over memory besides. Here the activations stay blocked from the first convolution to the
// pooling, batch norm and ReLU are one pass over each block of 16 channels (which are then the 16
// lanes of a vector: no horizontal sums), oneDNN's primitives are made once per shape and thread,
// and the first convolution is written out (FirstConv). Called directly: libtorch's own oneDNN
// (Debian's libdnnl.so.2) is the same library.
//
// Layout: a meta-batch's images are [N, T·C, H, W] (the tasks' channels side by side). In nChw16c
// with C a multiple of 16 that is the same memory as the batch [N·T, C, H, W] of all tasks' images,
// so while the tasks share θ (the first inner step) the forward and the input gradient are one
// ordinary convolution, as in conv.cpp; the weight gradient is always per task (grouped).
//
// The backward is not differentiable again: a second-order pass must not use this op, and its
// backward says so if asked (MAML's inner loop keeps the op-by-op path).
#include "common.h"

#ifdef METARUN_HAVE_DNNL

#include <ATen/Parallel.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <map>
#include <memory>
#include <tuple>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
constexpr auto f32 = dnnl::memory::data_type::f32;
constexpr int64_t kBlock = 16;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// A stream is not thread-safe; each worker thread has its own.
dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

// One block's geometry: input [N, T·C, H, W] (the first block's plain, later ones nChw16c),
// kernels [T, O, C, K, K], output [N, T·O, OH, OW] in nChw16c.
struct Geometry {
  int64_t n, t, c, o, h, w, k, stride, pad;
  bool first, shared;
  int64_t oh() const { return (h + 2 * pad - k) / stride + 1; }
  int64_t ow() const { return (w + 2 * pad - k) / stride + 1; }
  auto key() const { return std::make_tuple(n, t, c, o, h, w, k, stride, pad, first, shared); }
};

// Block b's geometry over n images of `tasks` tasks from its kernels ([T, O, C, K, K], or θ's
// [O, C, K, K] while the tasks share it) and its input's size.
Geometry geometry(int64_t n, int64_t tasks, const at::Tensor& kernels, int64_t h, int64_t w, int64_t stride, int64_t pad,
                  int64_t b, bool shared) {
  const int64_t d = kernels.dim();
  return {n, tasks, kernels.size(d - 3), kernels.size(d - 4), h, w, kernels.size(d - 1), stride, pad, b == 0, shared};
}

memory::desc blocked(int64_t n, int64_t c, int64_t h, int64_t w) { return {{n, c, h, w}, f32, tag::nChw16c}; }

// The primitives of a block after the first (FirstConv below is the first's convolution), made once
// per shape: oneDNN generates their code on creation.
struct Block {
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights backward_weights;
  // src/dst: the forward's and the input gradient's (shared θ: [N·T, …]); grouped_*: the weight gradient's.
  memory::desc src, dst, bias, grouped_src, grouped_dst, grouped_bias;
  memory::desc user_weights, forward_weights, data_weights, user_gradient, weight_gradient;

  explicit Block(const Geometry& g) {
    const auto& e = engine();
    const memory::dims strides{g.stride, g.stride}, pad{g.pad, g.pad};
    // Per task: one grouped convolution over [N, T·C, H, W]; shared θ: one over [N·T, C, H, W].
    grouped_src = blocked(g.n, g.t * g.c, g.h, g.w);
    grouped_dst = blocked(g.n, g.t * g.o, g.oh(), g.ow());
    grouped_bias = memory::desc({g.t * g.o}, f32, tag::x);
    user_gradient = memory::desc({g.t, g.o, g.c, g.k, g.k}, f32, tag::goihw);
    const memory::desc grouped_any({g.t, g.o, g.c, g.k, g.k}, f32, tag::any);
    const dnnl::convolution_forward::primitive_desc grouped_fwd(
        {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, grouped_src, grouped_any, grouped_bias,
         grouped_dst, strides, pad, pad},
        e);
    auto fwd = grouped_fwd;
    src = grouped_src, dst = grouped_dst, bias = grouped_bias, user_weights = user_gradient;
    if (g.shared) {
      src = blocked(g.n * g.t, g.c, g.h, g.w);
      dst = blocked(g.n * g.t, g.o, g.oh(), g.ow());
      bias = memory::desc({g.o}, f32, tag::x);
      user_weights = memory::desc({g.o, g.c, g.k, g.k}, f32, tag::oihw);
      fwd = dnnl::convolution_forward::primitive_desc(
          {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
           memory::desc({g.o, g.c, g.k, g.k}, f32, tag::any), bias, dst, strides, pad, pad},
          e);
    }
    forward = dnnl::convolution_forward(fwd);
    forward_weights = fwd.weights_desc();
    const dnnl::convolution_backward_data::primitive_desc bwd(
        {dnnl::algorithm::convolution_direct, src, memory::desc(user_weights.dims(), f32, tag::any), dst, strides, pad, pad}, e,
        fwd);
    backward_data = dnnl::convolution_backward_data(bwd);
    data_weights = bwd.weights_desc();
    const dnnl::convolution_backward_weights::primitive_desc bww(
        {dnnl::algorithm::convolution_direct, grouped_src, grouped_any, grouped_bias, grouped_dst, strides, pad, pad}, e,
        grouped_fwd);
    backward_weights = dnnl::convolution_backward_weights(bww);
    weight_gradient = bww.diff_weights_desc();
    // oneDNN's reference kernels are some hundred times slower than its jitted ones (they are what it
    // picks when a format is forced on it): a loud error rather than a run that crawls.
    for (const std::string impl : {fwd.impl_info_str(), bwd.impl_info_str(), bww.impl_info_str()})
      TORCH_CHECK(impl.rfind("ref", 0) != 0, "conv stack: oneDNN has only its reference kernel (", impl, ") for a ", g.c, "→", g.o,
                  " convolution on ", g.h, "×", g.w, "; set execution: per_task");
  }
};

Block& block(const Geometry& g) {
  thread_local std::map<decltype(g.key()), std::unique_ptr<Block>> made;
  auto& b = made[g.key()];
  if (!b) b = std::make_unique<Block>(g);
  return *b;
}

float* data(const at::Tensor& t) { return t.data_ptr<float>(); }

// A float buffer for a memory of layout d.
at::Tensor buffer(const memory::desc& d) {
  return at::empty({static_cast<int64_t>(d.get_size() / sizeof(float))}, at::TensorOptions().dtype(at::kFloat));
}

// t's values in layout `to` (t itself when `from` is already that layout).
at::Tensor reorder(const at::Tensor& t, const memory::desc& from, const memory::desc& to) {
  if (from == to) return t;
  auto out = buffer(to);
  memory src(from, engine(), data(t)), dst(to, engine(), data(out));
  dnnl::reorder(src, dst).execute(stream(), src, dst);
  return out;
}

// The kernels below work on blocks of 16 channels, one channel per lane of an AVX-512 register;
// the op is offered only where the processor has AVX-512 (oneDNN's fast kernels for this layout
// need it too), and these functions alone are compiled for it.
#define MR_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

MR_AVX512 inline v16 load(const float* p) { return *reinterpret_cast<const v16u*>(p); }
MR_AVX512 inline void store(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
MR_AVX512 inline v16 splat(float x) { return v16{} + x; }
MR_AVX512 inline v16 relu_mask(v16 y, v16 g) { return y > 0 ? g : v16{}; }

// Per-channel sums run in float over a fixed stretch of values per lane and are then added into
// doubles, so their order depends on the shape alone (the same bits on any thread count).
constexpr int64_t kStretch = 64;

MR_AVX512 inline void flush(v16& lane, double* total) {
  for (int64_t l = 0; l < kBlock; l++) total[l] += lane[l];
  lane = v16{};
}

// One block cb of 16 channels of [N, CB, S, 16]: y = relu(γ (z − μ) r + β) with the batch's mean μ
// and r = 1/√(σ² + ε) (σ² biased); μ and r stored per channel.
MR_AVX512 void batch_norm_relu_block(const float* Z, const float* G, const float* B, double eps, int64_t n, int64_t cbs,
                                     int64_t s, int64_t cb, float* Y, float* MU, float* R) {
  const double m = static_cast<double>(n * s);
  double sum[kBlock] = {}, sq[kBlock] = {};
  v16 lane{};
  int64_t pending = 0;
  for (int64_t i = 0; i < n; i++) {
    const float* p = Z + (i * cbs + cb) * s * kBlock;
    for (int64_t k = 0; k < s; k++) {
      lane += load(p + k * kBlock);
      if (++pending == kStretch) flush(lane, sum), pending = 0;
    }
  }
  flush(lane, sum), pending = 0;
  float mu[kBlock];
  for (int64_t l = 0; l < kBlock; l++) mu[l] = static_cast<float>(sum[l] / m);
  const v16 mv = load(mu);
  for (int64_t i = 0; i < n; i++) {
    const float* p = Z + (i * cbs + cb) * s * kBlock;
    for (int64_t k = 0; k < s; k++) {
      const v16 d = load(p + k * kBlock) - mv;
      lane += d * d;
      if (++pending == kStretch) flush(lane, sq), pending = 0;
    }
  }
  flush(lane, sq);
  float scale[kBlock], shift[kBlock];
  for (int64_t l = 0; l < kBlock; l++) {
    const int64_t ch = cb * kBlock + l;
    const double r = 1.0 / std::sqrt(sq[l] / m + eps);
    MU[ch] = mu[l];
    R[ch] = static_cast<float>(r);
    // (z − μ)·γr + β rather than z·γr + (β − μγr): no cancellation where the mean is large against the spread.
    scale[l] = static_cast<float>(G[ch] * r);
    shift[l] = B[ch];
  }
  const v16 sc = load(scale), sh = load(shift);
  for (int64_t i = 0; i < n; i++) {
    const int64_t base = (i * cbs + cb) * s * kBlock;
    for (int64_t k = 0; k < s; k++) {
      const v16 v = (load(Z + base + k * kBlock) - mv) * sc + sh;
      store(Y + base + k * kBlock, v > 0 ? v : v16{});
    }
  }
}

// Its backward: with g = gy where y > 0 (else 0), A = mean(g), B = mean(g x̂),
// gz = γ r (g − A − x̂ B), gγ = Σ g x̂, gβ = Σ g.
MR_AVX512 void batch_norm_relu_backward_block(const float* GY, const float* Z, const float* Y, const float* G,
                                              const float* MU, const float* R, int64_t n, int64_t cbs, int64_t s,
                                              int64_t cb, float* GZ, float* GG, float* GB) {
  const double m = static_cast<double>(n * s);
  float mu[kBlock];
  for (int64_t l = 0; l < kBlock; l++) mu[l] = MU[cb * kBlock + l];
  const v16 mv = load(mu);
  double sg[kBlock] = {}, sgx[kBlock] = {};
  v16 a{}, b{};
  int64_t pending = 0;
  for (int64_t i = 0; i < n; i++) {
    const int64_t base = (i * cbs + cb) * s * kBlock;
    for (int64_t k = 0; k < s; k++) {
      const int64_t o = base + k * kBlock;
      const v16 g = relu_mask(load(Y + o), load(GY + o));
      a += g;
      b += g * (load(Z + o) - mv);
      if (++pending == kStretch) flush(a, sg), flush(b, sgx), pending = 0;
    }
  }
  flush(a, sg), flush(b, sgx);
  float k1[kBlock], k2[kBlock], k3[kBlock];
  for (int64_t l = 0; l < kBlock; l++) {
    const int64_t ch = cb * kBlock + l;
    const double r = R[ch], gamma = G[ch], A = sg[l] / m, Bm = sgx[l] * r / m;
    // gz = γ r g − γ r² B (z − μ) − γ r A, as multiply-adds per value.
    k1[l] = static_cast<float>(gamma * r), k2[l] = static_cast<float>(-gamma * r * r * Bm), k3[l] = static_cast<float>(-gamma * r * A);
    GG[ch] = static_cast<float>(sgx[l] * r);
    GB[ch] = static_cast<float>(sg[l]);
  }
  const v16 c1 = load(k1), c2 = load(k2), c3 = load(k3);
  for (int64_t i = 0; i < n; i++) {
    const int64_t base = (i * cbs + cb) * s * kBlock;
    for (int64_t k = 0; k < s; k++) {
      const int64_t o = base + k * kBlock;
      store(GZ + o, relu_mask(load(Y + o), load(GY + o)) * c1 + (load(Z + o) - mv) * c2 + c3);
    }
  }
}

void batch_norm_relu(const at::Tensor& z, const at::Tensor& gamma, const at::Tensor& beta, double eps, int64_t n,
                     int64_t channels, int64_t s, at::Tensor& y, at::Tensor& mean, at::Tensor& invstd) {
  const int64_t cbs = channels / kBlock;
  at::parallel_for(0, cbs, 1, [&](int64_t begin, int64_t end) {
    for (int64_t cb = begin; cb < end; cb++)
      batch_norm_relu_block(data(z), data(gamma), data(beta), eps, n, cbs, s, cb, data(y), data(mean), data(invstd));
  });
}

void batch_norm_relu_backward(const at::Tensor& gy, const at::Tensor& z, const at::Tensor& y, const at::Tensor& gamma,
                              const at::Tensor& mean, const at::Tensor& invstd, int64_t n, int64_t channels, int64_t s,
                              at::Tensor& gz, at::Tensor& ggamma, at::Tensor& gbeta) {
  const int64_t cbs = channels / kBlock;
  at::parallel_for(0, cbs, 1, [&](int64_t begin, int64_t end) {
    for (int64_t cb = begin; cb < end; cb++)
      batch_norm_relu_backward_block(data(gy), data(z), data(y), data(gamma), data(mean), data(invstd), n, cbs, s, cb,
                                     data(gz), data(ggamma), data(gbeta));
  });
}

// The first block's convolution, by hand: its input has few channels per task (one on Omniglot),
// which oneDNN's fast kernels do not take for a grouped convolution with a blocked output (it
// falls back to its reference code, or to gemm with plain tensors and reorders). Each output
// position of a block of 16 channels is C·K·K multiply-adds of one input value into 16 lanes.
// An image's planes are first copied into a zero-padded buffer (no bounds checks per tap), and
// Omniglot's shape (C = 1, K = 3) is compiled on its own, its nine kernel vectors in registers.
struct FirstConv : Geometry {
  static constexpr int64_t kMaxTaps = 32;  // C·K·K: Omniglot's 9, RGB's 27
  explicit FirstConv(const Geometry& g) : Geometry(g) {}
  // Of the kernels [T, O, C, K, K]: 0 where the tasks share θ [O, C, K, K].
  int64_t task_stride() const { return shared ? 0 : o * c * k * k; }

  int64_t ph() const { return h + 2 * pad; }
  int64_t pw() const { return w + 2 * pad; }

  // Task `task`'s planes of image i, zero-padded, into out [C, PH, PW].
  void padded(const float* X, int64_t i, int64_t task, float* out) const {
    std::fill(out, out + c * ph() * pw(), 0.0f);
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t y = 0; y < h; y++) {
        const float* row = X + (((i * t + task) * c + ch) * h + y) * w;
        std::copy(row, row + w, out + (ch * ph() + y + pad) * pw() + pad);
      }
  }

  // Kernels of task t, output block cb, as [C·K·K][16].
  void gather(const float* W, int64_t task, int64_t cb, float* out) const {
    const int64_t taps = c * k * k;
    for (int64_t l = 0; l < kBlock; l++)
      for (int64_t q = 0; q < taps; q++) out[q * kBlock + l] = W[task * task_stride() + (cb * kBlock + l) * taps + q];
  }

  // One output block of one image from its padded planes P: z [OH·OW][16]. KS, CS: K and C
  // fixed at compile time (0: as given at run time).
  template <int KS, int CS>
  MR_AVX512 void forward_block(const float* P, const float* wk, const float* bias, float* out) const {
    const int64_t kk = KS > 0 ? KS : k, cc = CS > 0 ? CS : c, taps = cc * kk * kk, plane = ph() * pw(), rows = oh(), cols = ow();
    v16 wv[kMaxTaps];
    for (int64_t q = 0; q < taps; q++) wv[q] = load(wk + q * kBlock);
    const v16 b = load(bias);
    for (int64_t y = 0; y < rows; y++)
      for (int64_t x = 0; x < cols; x++) {
        v16 acc = b;
        const float* at = P + y * stride * pw() + x * stride;
        for (int64_t ch = 0; ch < cc; ch++)
          for (int64_t ky = 0; ky < kk; ky++)
            for (int64_t kx = 0; kx < kk; kx++) acc += splat(at[ch * plane + ky * pw() + kx]) * wv[(ch * kk + ky) * kk + kx];
        store(out + (y * cols + x) * kBlock, acc);
      }
  }

  // x [N, T·C, H, W] plain → z [N, T·O, OH, OW] nChw16c.
  void forward(const float* X, const float* W, const float* B, int64_t bias_stride, float* Z) const {
    const int64_t taps = c * k * k, obs = o / kBlock, cbs = t * obs;
    at::parallel_for(0, n * t, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> wk(taps * kBlock), P(c * ph() * pw());
      for (int64_t job = begin; job < end; job++) {
        const int64_t i = job / t, task = job % t;
        padded(X, i, task, P.data());
        for (int64_t ob = 0; ob < obs; ob++) {
          gather(W, task, ob, wk.data());
          const float* bias = B + task * bias_stride + ob * kBlock;
          float* out = Z + (i * cbs + task * obs + ob) * oh() * ow() * kBlock;
          if (k == 3 && c == 1)
            forward_block<3, 1>(P.data(), wk.data(), bias, out);
          else
            forward_block<0, 0>(P.data(), wk.data(), bias, out);
        }
      }
    });
  }

  // One output block's kernel and bias gradients over one image (padded planes P, gradient g0
  // [OH·OW][16]), summed in float and added into total [taps + 1][16] (doubles).
  template <int KS, int CS>
  MR_AVX512 void backward_block(const float* P, const float* g0, double* total) const {
    const int64_t kk = KS > 0 ? KS : k, cc = CS > 0 ? CS : c, taps = cc * kk * kk, plane = ph() * pw(), rows = oh(), cols = ow();
    v16 part[kMaxTaps], bias{};
    for (int64_t q = 0; q < taps; q++) part[q] = v16{};
    for (int64_t y = 0; y < rows; y++)
      for (int64_t x = 0; x < cols; x++) {
        const v16 g = load(g0 + (y * cols + x) * kBlock);
        bias += g;
        const float* at = P + y * stride * pw() + x * stride;
        for (int64_t ch = 0; ch < cc; ch++)
          for (int64_t ky = 0; ky < kk; ky++)
            for (int64_t kx = 0; kx < kk; kx++) part[(ch * kk + ky) * kk + kx] += splat(at[ch * plane + ky * pw() + kx]) * g;
      }
    for (int64_t q = 0; q < taps; q++) flush(part[q], total + q * kBlock);
    flush(bias, total + taps * kBlock);
  }

  // The kernels' and bias's gradients per task, gw [T, O, C, K, K] and gb [T·O], from gz (nChw16c).
  void backward_weights(const float* X, const float* GZ, float* GW, float* GB) const {
    const int64_t taps = c * k * k, obs = o / kBlock, cbs = t * obs;
    at::parallel_for(0, cbs, 1, [&](int64_t begin, int64_t end) {
      std::vector<double> total((taps + 1) * kBlock);
      std::vector<float> P(c * ph() * pw());
      for (int64_t cb = begin; cb < end; cb++) {
        const int64_t task = cb / obs;
        std::fill(total.begin(), total.end(), 0.0);
        for (int64_t i = 0; i < n; i++) {
          padded(X, i, task, P.data());
          const float* g0 = GZ + (i * cbs + cb) * oh() * ow() * kBlock;
          if (k == 3 && c == 1)
            backward_block<3, 1>(P.data(), g0, total.data());
          else
            backward_block<0, 0>(P.data(), g0, total.data());
        }
        for (int64_t l = 0; l < kBlock; l++) {
          const int64_t out = task * o + (cb % obs) * kBlock + l;
          for (int64_t q = 0; q < taps; q++) GW[out * taps + q] = static_cast<float>(total[q * kBlock + l]);
          GB[out] = static_cast<float>(total[taps * kBlock + l]);
        }
      }
    });
  }
};

bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
}

constexpr int kPerBlock = 4;  // conv weight [T, O, C, K, K], conv bias [T, O], γ [T, O], β [T, O]
constexpr int kSavedPerBlock = 6;  // kernels, γ, z, y, μ, r

memory mem(const memory::desc& d, const at::Tensor& t) { return memory(d, engine(), data(t)); }

struct ConvStack : public torch::autograd::Function<ConvStack> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList p, int64_t stride, int64_t pad,
                            double eps) {
    const int64_t blocks = static_cast<int64_t>(p.size()) / kPerBlock, n = x.size(0), tasks = p[0].size(0);
    const auto input = x.contiguous();
    at::Tensor in = input;
    int64_t h = x.size(2), w = x.size(3), channels = 0;
    std::vector<at::Tensor> saved{input};
    std::vector<int64_t> shared;
    for (int64_t b = 0; b < blocks; b++) {
      const auto& k = p[kPerBlock * b];
      const auto g = geometry(n, tasks, k, h, w, stride, pad, b, k.stride(0) == 0 && p[kPerBlock * b + 1].stride(0) == 0);
      // While the tasks share θ the kernels are a stride-0 view: θ itself is the ordinary convolution's.
      const auto kernels = (g.shared ? k[0] : k).contiguous();
      const auto bias = (g.shared ? p[kPerBlock * b + 1][0] : p[kPerBlock * b + 1]).contiguous();
      const auto gamma = p[kPerBlock * b + 2].contiguous();
      channels = g.t * g.o;
      const int64_t s = g.oh() * g.ow();
      auto z = at::empty({n * channels * s}, input.options());
      if (g.first) {
        FirstConv(g).forward(data(in), data(kernels), data(bias), g.shared ? 0 : g.o, data(z));
      } else {
        auto& prim = block(g);
        const auto fw = reorder(kernels, prim.user_weights, prim.forward_weights);
        prim.forward.execute(stream(), {{DNNL_ARG_SRC, mem(prim.src, in)},
                                        {DNNL_ARG_WEIGHTS, mem(prim.forward_weights, fw)},
                                        {DNNL_ARG_BIAS, mem(prim.bias, bias)},
                                        {DNNL_ARG_DST, mem(prim.dst, z)}});
      }
      auto y = at::empty_like(z), mean = at::empty({channels}, input.options()), invstd = at::empty({channels}, input.options());
      batch_norm_relu(z, gamma, p[kPerBlock * b + 3].contiguous(), eps, n, channels, s, y, mean, invstd);
      saved.insert(saved.end(), {kernels, gamma, z, y, mean, invstd});
      shared.push_back(g.shared);
      in = y, h = g.oh(), w = g.ow();
    }
    // The mean over space of the last block's [N, T·O, S] (blocked), as [N, T·O].
    const int64_t s = h * w, cbs = channels / kBlock;
    auto features = at::empty({n, channels}, input.options());
    const float* Y = data(in);
    float* F = data(features);
    for (int64_t i = 0; i < n; i++)
      for (int64_t cb = 0; cb < cbs; cb++) {
        float sum[kBlock] = {};
        const float* base = Y + (i * cbs + cb) * s * kBlock;
        for (int64_t k = 0; k < s; k++)
          for (int64_t l = 0; l < kBlock; l++) sum[l] += base[k * kBlock + l];
        for (int64_t l = 0; l < kBlock; l++) F[i * channels + cb * kBlock + l] = sum[l] / static_cast<float>(s);
      }
    ctx->save_for_backward(saved);
    ctx->saved_data["geometry"] = std::vector<int64_t>{stride, pad, tasks};
    ctx->saved_data["shared"] = shared;
    return features;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "the blocked convolution stack has no second-order backward: use it for first-order passes only");
    const auto saved = ctx->get_saved_variables();
    const auto geo = ctx->saved_data["geometry"].toIntVector();
    const auto shared = ctx->saved_data["shared"].toIntVector();
    const int64_t stride = geo[0], pad = geo[1], tasks = geo[2], blocks = static_cast<int64_t>(shared.size());
    const auto& input = saved[0];
    const int64_t n = input.size(0);
    // Each block's geometry, from the input's size forwards.
    std::vector<Geometry> gs;
    int64_t h = input.size(2), w = input.size(3);
    for (int64_t b = 0; b < blocks; b++) {
      gs.push_back(geometry(n, tasks, saved[1 + kSavedPerBlock * b], h, w, stride, pad, b, shared[b] != 0));
      h = gs.back().oh(), w = gs.back().ow();
    }
    variable_list out(1 + kPerBlock * blocks + 3);
    if (!grads[0].defined()) return out;
    // The mean's gradient: every position of channel ch gets gf[·, ch] / S.
    const auto& last = gs.back();
    int64_t channels = last.t * last.o, s = last.oh() * last.ow(), cbs = channels / kBlock;
    auto gy = at::empty({n * channels * s}, input.options());
    {
      const auto gf = grads[0].contiguous();
      const float* GF = data(gf);
      float* GY = data(gy);
      for (int64_t i = 0; i < n; i++)
        for (int64_t cb = 0; cb < cbs; cb++)
          for (int64_t k = 0; k < s; k++)
            for (int64_t l = 0; l < kBlock; l++)
              GY[((i * cbs + cb) * s + k) * kBlock + l] = GF[i * channels + cb * kBlock + l] / static_cast<float>(s);
    }
    for (int64_t b = blocks - 1; b >= 0; b--) {
      const auto& g = gs[b];
      const auto* v = &saved[1 + kSavedPerBlock * b];
      const auto &kernels = v[0], &gamma = v[1], &z = v[2], &y = v[3], &mean = v[4], &invstd = v[5];
      const auto& in = b == 0 ? input : saved[1 + kSavedPerBlock * (b - 1) + 3];
      channels = g.t * g.o, s = g.oh() * g.ow();
      // gz in gy's place (each value is read, then written): gy is this op's own buffer, needed no longer.
      auto gz = gy, ggamma = at::empty({channels}, input.options()), gbeta = at::empty_like(ggamma);
      batch_norm_relu_backward(gy, z, y, gamma, mean, invstd, n, channels, s, gz, ggamma, gbeta);
      const std::vector<int64_t> shape{g.t, g.o};
      auto gb = at::empty({channels}, input.options());
      out[2 + kPerBlock * b] = gb.view(shape);
      out[3 + kPerBlock * b] = ggamma.view(shape);
      out[4 + kPerBlock * b] = gbeta.view(shape);
      if (g.first) {
        auto gw = at::empty({g.t, g.o, g.c, g.k, g.k}, input.options());
        FirstConv(g).backward_weights(data(in), data(gz), data(gw), data(gb));
        out[1 + kPerBlock * b] = gw;
        continue;
      }
      auto& prim = block(g);
      auto gw = buffer(prim.weight_gradient);
      prim.backward_weights.execute(stream(), {{DNNL_ARG_SRC, mem(prim.grouped_src, in)},
                                               {DNNL_ARG_DIFF_DST, mem(prim.grouped_dst, gz)},
                                               {DNNL_ARG_DIFF_WEIGHTS, mem(prim.weight_gradient, gw)},
                                               {DNNL_ARG_DIFF_BIAS, mem(prim.grouped_bias, gb)}});
      out[1 + kPerBlock * b] = reorder(gw, prim.weight_gradient, prim.user_gradient).view({g.t, g.o, g.c, g.k, g.k});
      const auto dw = reorder(kernels, prim.user_weights, prim.data_weights);
      auto gx = at::empty({in.numel()}, input.options());
      prim.backward_data.execute(stream(), {{DNNL_ARG_DIFF_DST, mem(prim.dst, gz)},
                                            {DNNL_ARG_WEIGHTS, mem(prim.data_weights, dw)},
                                            {DNNL_ARG_DIFF_SRC, mem(prim.src, gx)}});
      gy = gx;
    }
    return out;
  }
};

}  // namespace

namespace metarun {

bool conv_stack_available() { return cpu_has_avx512(); }

at::Tensor conv_stack(const at::Tensor& x, at::TensorList params, int64_t stride, int64_t pad, double eps) {
  TORCH_CHECK(conv_stack_available(), "the blocked convolution stack needs a processor with AVX-512");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4,
              "conv stack: the images must be float32 [N, T·C, H, W] on the CPU");
  TORCH_CHECK(!x.requires_grad(), "conv stack: the images get no gradient here, so they must not require one");
  TORCH_CHECK(!params.empty() && params.size() % kPerBlock == 0,
              "conv stack: four tensors per block (kernels, bias, γ, β), not ", params.size());
  const int64_t tasks = params[0].dim() == 5 ? params[0].size(0) : 0;
  int64_t channels = tasks > 0 ? x.size(1) / tasks : 0;
  for (size_t b = 0; b < params.size() / kPerBlock; b++) {
    const auto& k = params[kPerBlock * b];
    TORCH_CHECK(k.dim() == 5 && k.size(0) == tasks && k.size(2) == channels && k.size(3) == k.size(4),
                "conv stack: block ", b, "'s kernels must be [T, O, C, K, K] with T = ", tasks, " and C = ", channels,
                ", not ", k.sizes());
    TORCH_CHECK(k.size(1) % kBlock == 0, "conv stack: output channels must be a multiple of 16, not ", k.size(1));
    for (int i = 0; i < kPerBlock; i++) {
      const auto& t = params[kPerBlock * b + i];
      TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, "conv stack: every weight must be float32 on the CPU");
      if (i > 0)
        TORCH_CHECK(t.dim() == 2 && t.size(0) == tasks && t.size(1) == k.size(1), "conv stack: block ", b, "'s bias, γ and β must be [",
                    tasks, ", ", k.size(1), "], not ", t.sizes());
    }
    if (b == 0)
      TORCH_CHECK(x.size(1) == tasks * channels && channels * k.size(3) * k.size(3) <= FirstConv::kMaxTaps,
                  "conv stack: the first block takes at most ", FirstConv::kMaxTaps, " input values per output (C·K·K)");
    channels = k.size(1);
  }
  return ConvStack::apply(x, params, stride, pad, eps);
}

}  // namespace metarun

#endif
