// Shared by every translation unit of the native layer: libtorch headers, the handle type
// and the one error-catching pattern that wraps every exported function.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#define MR_EXPORT extern "C" __attribute__((visibility("default")))

namespace metarun {

// A tensor handle is an owned, heap-allocated at::Tensor (a reference-counted pointer).
using Handle = at::Tensor*;

void set_last_error(const std::string& message);
void clear_last_error();
Handle wrap(at::Tensor t);
// A convolution: on the CPU conv.cpp's op, elsewhere libtorch's.
at::Tensor conv2d_grouped(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                          std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                          int64_t groups);
// Per-task kernels w [T, O, C/g, KH, KW] (and bias [T, O]) over x [N, T·C, H, W], groups = T·g.
at::Tensor conv2d_tasks(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                        std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                        int64_t groups);
at::Tensor batch_norm_train(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps);
#ifdef METARUN_HAVE_DNNL
// Blocks of convolution → batch norm → ReLU over a meta-batch, pooled by the mean over space (convstack.cpp).
at::Tensor conv_stack(const at::Tensor& x, at::TensorList params, int64_t stride, int64_t pad, double eps);
// Whether this processor runs it (AVX-512).
bool conv_stack_available();
#endif
inline at::Tensor& T(Handle h) {
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  return *h;
}
inline c10::optional<at::Tensor> opt(Handle h) {
  return h == nullptr ? c10::optional<at::Tensor>() : c10::optional<at::Tensor>(*h);
}
inline at::IntArrayRef dims(const int64_t* p, int n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }
inline at::Device device(int type, int index) {
  return at::Device(static_cast<c10::DeviceType>(type), static_cast<c10::DeviceIndex>(index));
}
inline at::TensorOptions options(int dtype, int device_type, int device_index) {
  return at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)).device(device(device_type, device_index));
}

}  // namespace metarun

// No C++ exception may cross into .NET: each exported body runs inside this guard and turns
// any exception into the thread's last error plus a failure return value.
#define MR_GUARD(fail_value, ...)                                              \
  try {                                                                        \
    metarun::clear_last_error();                                               \
    __VA_ARGS__                                                                \
  } catch (const c10::Error& e) {                                              \
    metarun::set_last_error(e.what_without_backtrace());                       \
  } catch (const std::exception& e) {                                          \
    metarun::set_last_error(e.what());                                         \
  } catch (...) {                                                              \
    metarun::set_last_error("unknown native error");                           \
  }                                                                            \
  return fail_value;

// Shorthands for the two kinds of exported function: one returning a new tensor handle
// (nullptr on failure) and one returning a status (0 on success, -1 on failure).
#define MR_TENSOR(...) MR_GUARD(nullptr, return metarun::wrap(__VA_ARGS__);)
#define MR_STATUS(...) MR_GUARD(-1, __VA_ARGS__ return 0;)
