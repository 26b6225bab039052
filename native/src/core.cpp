// Handles, errors, creation, conversion, metadata, random generators and threads.
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <cstring>
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>

namespace metarun {

// libtorch's CPU tensors come from malloc. glibc serves blocks above its mmap threshold (a few MB
// at most) with a fresh mmap each time and returns them on free, so every activation of a
// meta-batch (megabytes when its tasks run side by side) is page-faulted in anew, zeroed by the
// kernel, on every op: that was over half of a batched MAML iteration's time on the CPU. Such
// blocks now stay in the heap for reuse, and a heap keeps up to 128 MB of freed memory at its top
// rather than returning it at once; the next iteration allocates the same sizes again. The price
// is a higher resident size: each thread's heap keeps what it last used (docs/performance.md).
#ifdef __GLIBC__
[[gnu::constructor]] static void keep_large_blocks() {
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
}
#endif

static thread_local std::string g_last_error;
static std::atomic<int64_t> g_live{0};

void set_last_error(const std::string& message) { g_last_error = message.empty() ? "native error" : message; }
void clear_last_error() { g_last_error.clear(); }
Handle wrap(at::Tensor t) {
  auto* h = new at::Tensor(std::move(t));
  g_live.fetch_add(1, std::memory_order_relaxed);
  return h;
}

static at::Generator* G(void* g) { return static_cast<at::Generator*>(g); }
static c10::optional<at::Generator> optgen(void* g) {
  return g == nullptr ? c10::optional<at::Generator>() : c10::optional<at::Generator>(*G(g));
}

// libtorch answers "no GPU" alike for a CPU-only build and for a CUDA build on a machine without a
// usable GPU; the fix differs (rebuild against another libtorch vs. fix the driver), so tell them
// apart by whether its CUDA part was loaded with it.
static bool cuda_built() {
  static const bool built = [] {
    bool found = false;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) {
          if (info->dlpi_name != nullptr && std::strstr(info->dlpi_name, "libtorch_cuda") != nullptr) *static_cast<bool*>(data) = true;
          return 0;
        },
        &found);
    return found;
  }();
  return built;
}

static void require_device(const at::Device& d) {
  if (d.is_cuda() && !torch::cuda::is_available()) {
    throw std::runtime_error(cuda_built()
        ? "CUDA was requested, but this CUDA libtorch sees no GPU (check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES) "
          "or use device: cpu."
        : "CUDA was requested, but this libtorch is CPU-only. Rebuild the native library against a CUDA libtorch "
          "(docs/gpu.md: ./install.sh with a CUDA PyTorch active, or METARUN_LIBTORCH) or use device: cpu.");
  }
}

// OpenBLAS keeps its own thread pool, sized to the machine, which at::set_num_threads leaves
// alone; with tasks on two single-threaded workers, each worker's BLAS calls woke two busy-waiting
// threads and MAML ran 0.57 s per iteration instead of 0.42 (docs/performance.md). Looked up at run
// time in this library's own dependency tree, so builds whose libtorch uses MKL or another BLAS
// simply skip it.
using BlasThreadsFn = void (*)(int);
static void* blas_symbol(const char* name) {
  Dl_info self;
  if (dladdr(reinterpret_cast<void*>(&blas_symbol), &self) == 0 || self.dli_fname == nullptr) return nullptr;
  void* handle = dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  return handle == nullptr ? nullptr : dlsym(handle, name);  // searches the library and what it links
}
static BlasThreadsFn openblas_set_threads() {
  static const auto fn = reinterpret_cast<BlasThreadsFn>(blas_symbol("openblas_set_num_threads"));
  return fn;
}
static int openblas_threads() {
  static const auto fn = reinterpret_cast<int (*)()>(blas_symbol("openblas_get_num_threads"));
  return fn == nullptr ? -1 : fn();
}

}  // namespace metarun

using namespace metarun;

// ---- errors, lifetime, library facts ----
MR_EXPORT const char* mr_last_error() { return g_last_error.empty() ? nullptr : g_last_error.c_str(); }
MR_EXPORT void mr_free(Handle h) {
  if (h != nullptr) {
    delete h;
    g_live.fetch_sub(1, std::memory_order_relaxed);
  }
}
MR_EXPORT int64_t mr_live_tensors() { return g_live.load(); }
MR_EXPORT const char* mr_torch_version() {
  static const std::string v = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                               std::to_string(TORCH_VERSION_PATCH);
  return v.c_str();
}
MR_EXPORT int mr_cuda_built() { return cuda_built() ? 1 : 0; }
MR_EXPORT int mr_cuda_device_count() {
  MR_GUARD(-1, return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;)
}
MR_EXPORT int mr_set_num_threads(int n) {
  MR_STATUS(at::set_num_threads(n); if (auto blas = openblas_set_threads()) blas(n);)
}
/// OpenBLAS's thread count, or -1 where libtorch does not use OpenBLAS.
MR_EXPORT int mr_blas_threads() { return openblas_threads(); }
MR_EXPORT int mr_get_num_threads() { return at::get_num_threads(); }
// at::set_num_threads sets the calling thread's OpenMP count (and the count a thread takes at its
// first parallel op); a pool thread keeps the count it took first. One that first worked under
// another setting (an earlier command in the same process) would split its reductions otherwise:
// other last bits, and more threads than cores. Workers call this with the count they run under;
// only a thread whose count differs is set, as at::set_num_threads also empties this thread's
// cache of oneDNN convolutions.
MR_EXPORT int mr_set_thread_num_threads(int n) {
  MR_STATUS(if (at::get_num_threads() != n) at::set_num_threads(n);)
}
MR_EXPORT int mr_set_grad_enabled(int enabled) {
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(enabled != 0);
  return previous ? 1 : 0;
}
MR_EXPORT int mr_manual_seed(uint64_t seed) {
  MR_STATUS(at::manual_seed(seed); if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);)
}

// ---- generators: independent random streams whose state can be saved and restored ----
MR_EXPORT void* mr_generator_new(uint64_t seed, int device_type, int device_index) {
  MR_GUARD(nullptr, {
    auto d = device(device_type, device_index);
    require_device(d);
    auto g = at::globalContext().defaultGenerator(d).clone();
    g.set_current_seed(seed);
    return new at::Generator(std::move(g));
  })
}
MR_EXPORT void mr_generator_free(void* g) { delete G(g); }
MR_EXPORT Handle mr_generator_get_state(void* g) {
  MR_TENSOR([&] {
    std::lock_guard<std::mutex> lock(G(g)->mutex());
    return G(g)->get_state();
  }())
}
MR_EXPORT int mr_generator_set_state(void* g, Handle state) {
  MR_STATUS(std::lock_guard<std::mutex> lock(G(g)->mutex()); G(g)->set_state(T(state));)
}

// ---- creation ----
MR_EXPORT Handle mr_empty(const int64_t* shape, int n, int dtype, int dt, int di) {
  MR_TENSOR((require_device(device(dt, di)), at::empty(dims(shape, n), options(dtype, dt, di))))
}
MR_EXPORT Handle mr_full(const int64_t* shape, int n, double value, int dtype, int dt, int di) {
  MR_TENSOR((require_device(device(dt, di)), at::full(dims(shape, n), value, options(dtype, dt, di))))
}
MR_EXPORT Handle mr_randn(const int64_t* shape, int n, int dtype, int dt, int di, void* gen) {
  MR_TENSOR((require_device(device(dt, di)), at::randn(dims(shape, n), optgen(gen), options(dtype, dt, di))))
}
MR_EXPORT Handle mr_rand(const int64_t* shape, int n, int dtype, int dt, int di, void* gen) {
  MR_TENSOR((require_device(device(dt, di)), at::rand(dims(shape, n), optgen(gen), options(dtype, dt, di))))
}
MR_EXPORT Handle mr_randint(int64_t low, int64_t high, const int64_t* shape, int n, int dtype, int dt, int di, void* gen) {
  MR_TENSOR((require_device(device(dt, di)), at::randint(low, high, dims(shape, n), optgen(gen), options(dtype, dt, di))))
}
MR_EXPORT Handle mr_arange(double start, double end, double step, int dtype, int dt, int di) {
  MR_TENSOR((require_device(device(dt, di)), at::arange(start, end, step, options(dtype, dt, di))))
}
// Copies `bytes` of host memory into a new CPU tensor; the caller keeps its buffer.
MR_EXPORT Handle mr_from_data(const void* data, int64_t bytes, const int64_t* shape, int n, int dtype) {
  MR_TENSOR([&] {
    auto t = at::empty(dims(shape, n), at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)));
    if (static_cast<int64_t>(t.nbytes()) != bytes)
      throw std::invalid_argument("buffer holds " + std::to_string(bytes) + " bytes but the shape needs " +
                                  std::to_string(t.nbytes()));
    if (bytes > 0) std::memcpy(t.data_ptr(), data, static_cast<size_t>(bytes));
    return t;
  }())
}

// ---- conversion and copies ----
// dtype < 0 keeps the dtype; device_type < 0 keeps the device.
MR_EXPORT Handle mr_to(Handle h, int dtype, int dt, int di, int copy) {
  MR_TENSOR([&] {
    auto& t = T(h);
    auto st = dtype < 0 ? t.scalar_type() : static_cast<at::ScalarType>(dtype);
    auto d = dt < 0 ? t.device() : device(dt, di);
    require_device(d);
    return t.to(d, st, /*non_blocking=*/false, copy != 0);
  }())
}
// Copies the tensor's elements (row-major) into host memory of exactly `bytes` bytes.
MR_EXPORT int mr_copy_to_host(Handle h, void* dst, int64_t bytes) {
  MR_STATUS({
    auto t = T(h).detach().to(at::kCPU).contiguous();
    if (static_cast<int64_t>(t.nbytes()) != bytes)
      throw std::invalid_argument("destination holds " + std::to_string(bytes) + " bytes but the tensor has " +
                                  std::to_string(t.nbytes()));
    if (bytes > 0) std::memcpy(dst, t.data_ptr(), static_cast<size_t>(bytes));
  })
}
MR_EXPORT int mr_item(Handle h, double* out) { MR_STATUS(*out = T(h).item<double>();) }

// ---- metadata ----
MR_EXPORT int mr_ndim(Handle h) { MR_GUARD(-1, return static_cast<int>(T(h).dim());) }
MR_EXPORT int mr_shape(Handle h, int64_t* out) {
  MR_STATUS(auto s = T(h).sizes(); std::copy(s.begin(), s.end(), out);)
}
MR_EXPORT int mr_dtype(Handle h) { MR_GUARD(-1, return static_cast<int>(T(h).scalar_type());) }
MR_EXPORT int mr_device(Handle h, int* type, int* index) {
  MR_STATUS(auto d = T(h).device(); *type = static_cast<int>(d.type()); *index = d.has_index() ? d.index() : 0;)
}
MR_EXPORT int mr_requires_grad(Handle h) { MR_GUARD(-1, return T(h).requires_grad() ? 1 : 0;) }
MR_EXPORT int mr_set_requires_grad(Handle h, int on) { MR_STATUS(T(h).requires_grad_(on != 0);) }
// The accumulated .grad of a leaf, or nullptr with no error when it has none.
MR_EXPORT Handle mr_grad_of(Handle h) {
  MR_GUARD(nullptr, {
    auto g = T(h).grad();
    return g.defined() ? wrap(g) : nullptr;
  })
}
MR_EXPORT int mr_zero_grad(Handle h) {
  MR_STATUS(auto& g = T(h).mutable_grad(); if (g.defined()) g = at::Tensor();)
}
