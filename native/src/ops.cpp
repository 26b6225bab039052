// Tensor operations: shapes, arithmetic, reductions, neural-network functions, autograd
// and the fused optimizer updates.
#include "common.h"
#include "codes.h"

#include <limits>

using namespace metarun;

static std::vector<at::Tensor> tensors(Handle* hs, int n) {
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) v.push_back(T(hs[i]));
  return v;
}

// ---- shapes ----
MR_EXPORT Handle mr_view(Handle h, const int64_t* s, int n) { MR_TENSOR(T(h).view(dims(s, n))) }
MR_EXPORT Handle mr_reshape(Handle h, const int64_t* s, int n) { MR_TENSOR(T(h).reshape(dims(s, n))) }
MR_EXPORT Handle mr_permute(Handle h, const int64_t* s, int n) { MR_TENSOR(T(h).permute(dims(s, n))) }
MR_EXPORT Handle mr_expand(Handle h, const int64_t* s, int n) { MR_TENSOR(T(h).expand(dims(s, n))) }
MR_EXPORT Handle mr_repeat(Handle h, const int64_t* s, int n) { MR_TENSOR(T(h).repeat(dims(s, n))) }
MR_EXPORT Handle mr_transpose(Handle h, int64_t a, int64_t b) { MR_TENSOR(T(h).transpose(a, b)) }
MR_EXPORT Handle mr_flatten(Handle h, int64_t a, int64_t b) { MR_TENSOR(T(h).flatten(a, b)) }
MR_EXPORT Handle mr_unsqueeze(Handle h, int64_t d) { MR_TENSOR(T(h).unsqueeze(d)) }
// dim == INT64_MIN squeezes every size-1 dimension.
MR_EXPORT Handle mr_squeeze(Handle h, int64_t d) { MR_TENSOR(d == INT64_MIN ? T(h).squeeze() : T(h).squeeze(d)) }
MR_EXPORT Handle mr_narrow(Handle h, int64_t d, int64_t start, int64_t len) { MR_TENSOR(T(h).narrow(d, start, len)) }
MR_EXPORT Handle mr_index_select(Handle h, int64_t d, Handle idx) { MR_TENSOR(T(h).index_select(d, T(idx))) }
MR_EXPORT Handle mr_gather(Handle h, int64_t d, Handle idx) { MR_TENSOR(T(h).gather(d, T(idx))) }
MR_EXPORT Handle mr_index(Handle h, Handle idx) { MR_TENSOR(T(h).index({T(idx)})) }
MR_EXPORT Handle mr_cat(Handle* hs, int n, int64_t d) { MR_TENSOR(at::cat(tensors(hs, n), d)) }
MR_EXPORT Handle mr_stack(Handle* hs, int n, int64_t d) { MR_TENSOR(at::stack(tensors(hs, n), d)) }
MR_EXPORT Handle mr_contiguous(Handle h) { MR_TENSOR(T(h).contiguous()) }
MR_EXPORT Handle mr_clone(Handle h) { MR_TENSOR(T(h).clone()) }
MR_EXPORT Handle mr_detach(Handle h) { MR_TENSOR(T(h).detach()) }
MR_EXPORT Handle mr_alias(Handle h) { MR_TENSOR(T(h)) }

// ---- elementwise ----
MR_EXPORT Handle mr_unary(Handle h, int op) {
  MR_TENSOR([&] {
    auto& t = T(h);
    // On the enum, not the int, so that -Wswitch names a code left without its case.
    switch (static_cast<Unary>(op)) {
      case U_NEG: return t.neg();
      case U_SQRT: return t.sqrt();
      case U_EXP: return t.exp();
      case U_LOG: return t.log();
      case U_ABS: return t.abs();
      case U_RELU: return t.relu();
      case U_SIGMOID: return t.sigmoid();
      case U_TANH: return t.tanh();
      case U_SIGN: return t.sign();
      case U_RECIPROCAL: return t.reciprocal();
      case U_SQUARE: return t.square();
      case U_FLOOR: return t.floor();
      case U_LOGICAL_NOT: return t.logical_not();
      case U_COUNT: break;
    }
    throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }())
}

static at::Tensor binary(const at::Tensor& a, const at::Tensor& b, int op) {
  switch (static_cast<Binary>(op)) {
    case B_ADD: return a.add(b);
    case B_SUB: return a.sub(b);
    case B_MUL: return a.mul(b);
    case B_DIV: return a.div(b);
    case B_POW: return a.pow(b);
    case B_MATMUL: return a.matmul(b);
    case B_MAXIMUM: return at::maximum(a, b);
    case B_MINIMUM: return at::minimum(a, b);
    case B_EQ: return a.eq(b);
    case B_NE: return a.ne(b);
    case B_LT: return a.lt(b);
    case B_LE: return a.le(b);
    case B_GT: return a.gt(b);
    case B_GE: return a.ge(b);
    case B_AND: return a.logical_and(b);
    case B_OR: return a.logical_or(b);
    case B_COUNT: break;
  }
  throw std::invalid_argument("unknown binary op " + std::to_string(op));
}
MR_EXPORT Handle mr_binary(Handle a, Handle b, int op) { MR_TENSOR(binary(T(a), T(b), op)) }
// Tensor ∘ scalar; `reversed` computes scalar ∘ tensor (for 1 - x, 2 / x). The scalar is a
// "wrapped number", as PyTorch makes of a Python scalar, so it promotes by category only: an
// integral value keeps integer tensors integer (bool becomes int64), a fractional one makes them
// float32 (the default dtype), and a floating tensor keeps its own dtype.
MR_EXPORT Handle mr_binary_scalar(Handle a, double s, int op, int reversed) {
  MR_TENSOR([&] {
    auto& t = T(a);
    bool integral = !at::isFloatingType(t.scalar_type()) && std::abs(s) < 9.2e18 && s == std::trunc(s);
    auto st = integral ? at::scalar_tensor(static_cast<int64_t>(s), t.options().dtype(at::kLong))
                       : at::scalar_tensor(s, t.options().dtype(at::kDouble));
    st.unsafeGetTensorImpl()->set_wrapped_number(true);
    return reversed ? binary(st, t, op) : binary(t, st, op);
  }())
}
MR_EXPORT Handle mr_add_scaled(Handle a, Handle b, double alpha) { MR_TENSOR(T(a).add(T(b), alpha)) }
MR_EXPORT Handle mr_clamp(Handle h, double lo, double hi, int has_lo, int has_hi) {
  MR_TENSOR(at::clamp(T(h), has_lo ? c10::optional<at::Scalar>(lo) : c10::nullopt,
                       has_hi ? c10::optional<at::Scalar>(hi) : c10::nullopt))
}
MR_EXPORT Handle mr_where(Handle c, Handle a, Handle b) { MR_TENSOR(at::where(T(c), T(a), T(b))) }

// ---- in place, for optimizers and buffers (callers disable grad) ----
MR_EXPORT int mr_copy_(Handle dst, Handle src) { MR_STATUS(T(dst).copy_(T(src));) }
MR_EXPORT int mr_fill_(Handle dst, double v) { MR_STATUS(T(dst).fill_(v);) }
MR_EXPORT int mr_add_(Handle dst, Handle src, double alpha) { MR_STATUS(T(dst).add_(T(src), alpha);) }
MR_EXPORT int mr_mul_scalar_(Handle dst, double s) { MR_STATUS(T(dst).mul_(s);) }

// ---- reductions ----
// n == 0 reduces over all dimensions.
MR_EXPORT Handle mr_reduce(Handle h, int op, const int64_t* d, int n, int keepdim) {
  MR_TENSOR([&] {
    auto& t = T(h);
    bool k = keepdim != 0;
    auto ds = dims(d, n);
    switch (static_cast<Reduce>(op)) {
      case R_SUM: return n == 0 ? t.sum() : t.sum(ds, k);
      case R_MEAN: return n == 0 ? t.mean() : t.mean(ds, k);
      case R_VAR: return n == 0 ? t.var(true) : t.var(ds, true, k);
      case R_VAR_BIASED: return n == 0 ? t.var(false) : t.var(ds, false, k);
      case R_STD: return n == 0 ? t.std(true) : t.std(ds, true, k);
      case R_AMAX: return n == 0 ? t.max() : t.amax(ds, k);
      case R_AMIN: return n == 0 ? t.min() : t.amin(ds, k);
      case R_COUNT: break;
    }
    throw std::invalid_argument("unknown reduction " + std::to_string(op));
  }())
}
MR_EXPORT Handle mr_argmax(Handle h, int64_t d, int keepdim) { MR_TENSOR(T(h).argmax(d, keepdim != 0)) }
MR_EXPORT Handle mr_argmin(Handle h, int64_t d, int keepdim) { MR_TENSOR(T(h).argmin(d, keepdim != 0)) }

// ---- neural-network functions ----
// On the CPU through conv.cpp's op (same forward and backward, a double backward without a loop over groups).
// Weights [T, O, C/g, KH, KW] are per-task kernels (groups = T·g); shared by all tasks (stride 0
// over T), on the CPU one ordinary convolution over the tasks' images.
MR_EXPORT Handle mr_conv2d(Handle x, Handle w, Handle b, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                           int64_t dw, int64_t groups) {
  MR_TENSOR(T(w).dim() == 5 ? metarun::conv2d_tasks(T(x), T(w), opt(b), {sh, sw}, {ph, pw}, {dh, dw}, groups)
                            : metarun::conv2d_grouped(T(x), T(w), opt(b), {sh, sw}, {ph, pw}, {dh, dw}, groups))
}
MR_EXPORT Handle mr_linear(Handle x, Handle w, Handle b) { MR_TENSOR(at::linear(T(x), T(w), opt(b))) }
// training != 0 normalizes with the batch's statistics (and updates running stats if given).
// With the batch's statistics, an affine and nothing to update on the CPU, batchnorm.cpp's op (same
// forward and first backward, a faster double backward).
MR_EXPORT Handle mr_batch_norm(Handle x, Handle w, Handle b, Handle rm, Handle rv, int training, double momentum,
                               double eps) {
  MR_TENSOR(training != 0 && rm == nullptr && rv == nullptr && w != nullptr && b != nullptr && T(x).device().is_cpu() &&
                    T(x).dim() >= 2
                ? metarun::batch_norm_train(T(x), T(w), T(b), eps)
                : at::batch_norm(T(x), opt(w), opt(b), opt(rm), opt(rv), training != 0, momentum, eps, true))
}
// A meta-batch's conv → batch norm → ReLU blocks in oneDNN's blocked layout, for a first-order
// backward only (convstack.cpp): x [N, T·C, H, W]; params per block: kernels [T, O, C, K, K],
// bias, γ and β [T, O]. mr_conv_stack_available: 0 where the library was built without oneDNN's headers
// or the processor lacks AVX-512.
MR_EXPORT int mr_conv_stack_available() {
#ifdef METARUN_HAVE_DNNL
  return metarun::conv_stack_available() ? 1 : 0;
#else
  return 0;
#endif
}
MR_EXPORT Handle mr_conv_stack(Handle x, Handle* params, int count, int64_t stride, int64_t pad, double eps) {
#ifdef METARUN_HAVE_DNNL
  MR_TENSOR(([&] {
    std::vector<at::Tensor> p;
    for (int i = 0; i < count; i++) p.push_back(T(params[i]));
    return metarun::conv_stack(T(x), p, stride, pad, eps);
  }()))
#else
  metarun::set_last_error("this build of the native library has no blocked convolution stack (oneDNN's headers were missing)");
  return nullptr;
#endif
}
MR_EXPORT Handle mr_max_pool2d(Handle x, int64_t k, int64_t s, int64_t p) { MR_TENSOR(at::max_pool2d(T(x), {k, k}, {s, s}, {p, p})) }
MR_EXPORT Handle mr_avg_pool2d(Handle x, int64_t k, int64_t s, int64_t p) { MR_TENSOR(at::avg_pool2d(T(x), {k, k}, {s, s}, {p, p})) }
MR_EXPORT Handle mr_adaptive_avg_pool2d(Handle x, int64_t oh, int64_t ow) { MR_TENSOR(at::adaptive_avg_pool2d(T(x), {oh, ow})) }
MR_EXPORT Handle mr_leaky_relu(Handle x, double slope) { MR_TENSOR(at::leaky_relu(T(x), slope)) }
MR_EXPORT Handle mr_log_softmax(Handle x, int64_t d) { MR_TENSOR(T(x).log_softmax(d)) }
MR_EXPORT Handle mr_softmax(Handle x, int64_t d) { MR_TENSOR(T(x).softmax(d)) }
static_assert(LR_NONE == static_cast<int32_t>(at::Reduction::None) &&
                  LR_MEAN == static_cast<int32_t>(at::Reduction::Mean) &&
                  LR_SUM == static_cast<int32_t>(at::Reduction::Sum),
              "LossReduction must keep libtorch's at::Reduction values");
// libtorch treats any code other than mean and sum as none, so an unknown one is refused here.
static int64_t loss_reduction(int reduction) {
  switch (static_cast<LossReduction>(reduction)) {
    case LR_NONE:
    case LR_MEAN:
    case LR_SUM: return reduction;
    case LR_COUNT: break;
  }
  throw std::invalid_argument("unknown loss reduction " + std::to_string(reduction));
}
MR_EXPORT Handle mr_cross_entropy(Handle logits, Handle target, int reduction) {
  MR_TENSOR(at::cross_entropy_loss(T(logits), T(target), {}, loss_reduction(reduction)))
}
MR_EXPORT Handle mr_mse_loss(Handle a, Handle b, int reduction) {
  MR_TENSOR(at::mse_loss(T(a), T(b), loss_reduction(reduction)))
}
// One LSTM step, ATen's differentiable cell: gates = x·w_ihᵀ + b_ih + h·w_hhᵀ + b_hh in PyTorch's
// (input, forget, cell, output) order. Two outputs, so through out-parameters; biases may be null.
MR_EXPORT int mr_lstm_cell(Handle x, Handle h, Handle c, Handle w_ih, Handle w_hh, Handle b_ih, Handle b_hh, Handle* h_out,
                           Handle* c_out) {
  MR_STATUS({
    auto hc = at::lstm_cell(T(x), {T(h), T(c)}, T(w_ih), T(w_hh), opt(b_ih), opt(b_hh));
    *h_out = wrap(std::get<0>(hc));
    *c_out = wrap(std::get<1>(hc));
  })
}
// Causal 1-D convolution (WaveNet, SNAIL's TC blocks): x [N, C, L], w [O, C, K]; the input is
// padded with (K − 1)·dilation zeros on the left only, so output t reads inputs t, t − d, …, t − (K − 1)d
// and never a later one; the output keeps length L.
MR_EXPORT Handle mr_causal_conv1d(Handle x, Handle w, Handle b, int64_t dilation) {
  MR_TENSOR([&] {
    if (dilation < 1) throw std::invalid_argument("dilation must be at least 1, got " + std::to_string(dilation));
    auto& t = T(x);
    if (t.dim() != 3) throw std::invalid_argument("causal_conv1d expects [N, C, L] input");
    auto left = (T(w).size(2) - 1) * dilation;
    std::vector<int64_t> one{1}, zero{0}, dil{dilation};
    return at::conv1d(at::constant_pad_nd(t, {left, 0}), T(w), opt(b), one, zero, dil, 1);
  }())
}
// Softmax over `d` among the entries where mask (bool, broadcastable to x) is true; masked-out
// entries get probability 0 and no gradient. They are filled with float's lowest value rather than
// −inf so that a row with no entry left is all zeros with a zero gradient, not NaN.
MR_EXPORT Handle mr_masked_softmax(Handle x, Handle mask, int64_t d) {
  MR_TENSOR([&] {
    auto& m = T(mask);
    if (m.scalar_type() != at::kBool) throw std::invalid_argument("masked_softmax expects a bool mask");
    auto filled = T(x).masked_fill(m.logical_not(), static_cast<double>(std::numeric_limits<float>::lowest()));
    return at::softmax(filled, d).masked_fill(m.logical_not(), 0);
  }())
}
// The k-th smallest value (1-based k) along `d`: where a memory's least-used slots start (MANN's LRU).
MR_EXPORT Handle mr_kthvalue(Handle x, int64_t k, int64_t d, int keepdim) {
  MR_TENSOR(std::get<0>(at::kthvalue(T(x), k, d, keepdim != 0)))
}
// Dropout draws its mask from the given generator so that it is reproducible.
MR_EXPORT Handle mr_dropout(Handle x, double p, int training, void* gen) {
  MR_TENSOR([&] {
    auto& t = T(x);
    if (training == 0 || p == 0) return t;
    if (p >= 1) return t * 0;
    auto g = gen == nullptr ? c10::optional<at::Generator>() : c10::optional<at::Generator>(*static_cast<at::Generator*>(gen));
    auto mask = at::empty_like(t, at::MemoryFormat::Preserve).bernoulli_(1 - p, g);
    return t * mask / (1 - p);
  }())
}
// Antialiasing applies to bilinear and bicubic when shrinking.
MR_EXPORT Handle mr_interpolate(Handle x, int64_t oh, int64_t ow, int mode, int antialias) {
  MR_TENSOR([&] {
    auto& t = T(x);
    std::vector<int64_t> size{oh, ow};
    switch (static_cast<Interpolation>(mode)) {
      case I_BILINEAR:
        return antialias ? at::_upsample_bilinear2d_aa(t, size, false, c10::nullopt, c10::nullopt)
                         : at::upsample_bilinear2d(t, size, false, c10::nullopt, c10::nullopt);
      case I_BICUBIC:
        return antialias ? at::_upsample_bicubic2d_aa(t, size, false, c10::nullopt, c10::nullopt)
                         : at::upsample_bicubic2d(t, size, false, c10::nullopt, c10::nullopt);
      case I_AREA:
        return at::adaptive_avg_pool2d(t, size);
      case I_COUNT: break;
    }
    throw std::invalid_argument("unknown interpolation mode " + std::to_string(mode));
  }())
}

// ---- autograd ----
MR_EXPORT int mr_backward(Handle h, Handle grad, int retain_graph, int create_graph) {
  MR_STATUS(T(h).backward(grad == nullptr ? at::Tensor() : T(grad), retain_graph != 0, create_graph != 0);)
}
// d(outputs)/d(inputs); results[i] is nullptr for an input the outputs do not use (allow_unused).
MR_EXPORT int mr_autograd_grad(Handle* outs, int n_out, Handle* grad_outs, Handle* ins, int n_in, int retain_graph,
                               int create_graph, int allow_unused, Handle* results) {
  MR_STATUS({
    std::vector<at::Tensor> go;
    if (grad_outs != nullptr) go = tensors(grad_outs, n_out);
    auto gs = torch::autograd::grad(tensors(outs, n_out), tensors(ins, n_in), go, retain_graph != 0, create_graph != 0,
                                    allow_unused != 0);
    for (int i = 0; i < n_in; i++) results[i] = gs[static_cast<size_t>(i)].defined() ? wrap(gs[static_cast<size_t>(i)]) : nullptr;
  })
}

// ---- fused optimizer updates (one native call per parameter, no graph) ----
MR_EXPORT int mr_sgd_step(Handle p, Handle g, Handle momentum_buf, double lr, double momentum, double weight_decay,
                          int nesterov, int first) {
  MR_STATUS({
    at::NoGradGuard no_grad;
    auto d = T(g);
    if (weight_decay != 0) d = d.add(T(p), weight_decay);
    if (momentum != 0) {
      auto& buf = T(momentum_buf);
      if (first) buf.copy_(d); else buf.mul_(momentum).add_(d);
      d = nesterov ? d.add(buf, momentum) : buf;
    }
    T(p).add_(d, -lr);
  })
}
// Adam (Kingma & Ba) with bias correction; `step` is the 1-based step count after this update.
MR_EXPORT int mr_adam_step(Handle p, Handle g, Handle m, Handle v, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int64_t step) {
  MR_STATUS({
    at::NoGradGuard no_grad;
    auto d = T(g);
    if (weight_decay != 0) d = d.add(T(p), weight_decay);
    T(m).mul_(beta1).add_(d, 1 - beta1);
    T(v).mul_(beta2).addcmul_(d, d, 1 - beta2);
    double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
    double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
    auto denom = (T(v).sqrt() / std::sqrt(bc2)).add_(eps);
    T(p).addcdiv_(T(m), denom, -lr / bc1);
  })
}

// ---- the codes' counts (codes.h), for the binding's check against its own enums ----
MR_EXPORT int32_t mr_enum_count(const char* name) {
  MR_GUARD(-1, {
    if (name == nullptr) throw std::invalid_argument("null enum name");
    std::string n(name);
    if (n == "unary") return U_COUNT;
    if (n == "binary") return B_COUNT;
    if (n == "reduce") return R_COUNT;
    if (n == "loss_reduction") return LR_COUNT;
    if (n == "interpolation") return I_COUNT;
    if (n == "image_format") return IMG_COUNT;
    throw std::invalid_argument("unknown enum '" + n + "'");
  })
}
