// Data-parallel collectives through libtorch's own c10d: a TCPStore for rendezvous and small
// key/value exchange, ProcessGroupGloo on CPU and ProcessGroupNCCL where this libtorch has CUDA
// and NCCL (CMake defines METARUN_HAVE_NCCL only then, so the CPU-only Debian build compiles).
#include "common.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef METARUN_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef METARUN_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>

namespace metarun {

// libtorch 2 made Gloo and NCCL "backends" under a ProcessGroup facade; 1.13 has them as process
// groups. Both spell the collectives used here the same way.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

// The store every call uses (the TCP store, or a prefixed view of it) and the TCP store itself.
struct StoreHandle {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::TCPStore> tcp;
};

// The group and the one timeout every wait on it uses: c10d's Work::wait has no default bound,
// and a peer that hangs (alive, never joining a collective) would otherwise block forever.
struct GroupHandle {
  c10::intrusive_ptr<Collectives> group;
  std::chrono::milliseconds timeout;
};

static StoreHandle* S(void* h) {
  if (h == nullptr) throw std::invalid_argument("null store handle");
  return static_cast<StoreHandle*>(h);
}
static GroupHandle* PG(void* h) {
  if (h == nullptr) throw std::invalid_argument("null process group handle");
  return static_cast<GroupHandle*>(h);
}

// c10d logs every failure through glog to stderr before it throws ("E1123 ... socket.cpp:860]
// [c10d] The client socket has timed out ..."), and the same text then reaches the user in
// MetaRun's one-line error. While a c10d call runs, glog's threshold is raised to fatal so the
// message is printed once. glog is found at run time in this library's dependency tree (the
// libtorch builds that log elsewhere simply have no such flag).
static int* glog_min_level() {
  static int* const flag = [] {
    Dl_info self;
    if (dladdr(reinterpret_cast<void*>(&glog_min_level), &self) == 0 || self.dli_fname == nullptr) return static_cast<int*>(nullptr);
    void* handle = dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    return handle == nullptr ? nullptr : static_cast<int*>(dlsym(handle, "_ZN3fLI17FLAGS_minloglevelE"));
  }();
  return flag;
}
struct QuietGlog {
  int* flag = glog_min_level();
  int saved = flag != nullptr ? *flag : 0;
  QuietGlog() {
    if (flag != nullptr) *flag = 3;  // glog's FATAL
  }
  ~QuietGlog() {
    if (flag != nullptr) *flag = saved;
  }
};

static void wait_for(GroupHandle* g, const c10::intrusive_ptr<c10d::Work>& work) {
  QuietGlog quiet;
  work->wait(g->timeout);
}

static std::vector<at::Tensor> tensors(Handle* hs, int n) {
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) v.push_back(T(hs[i]));
  return v;
}

static uint8_t* copy_out(const std::vector<uint8_t>& bytes) {
  auto* buf = static_cast<uint8_t*>(std::malloc(bytes.empty() ? 1 : bytes.size()));
  if (buf == nullptr) throw std::bad_alloc();
  if (!bytes.empty()) std::memcpy(buf, bytes.data(), bytes.size());
  return buf;
}

}  // namespace metarun

using namespace metarun;

// ---- store ----
// The master binds host:port and serves the store inside this process; the others connect to it,
// retrying until the timeout. Neither waits for the rest of the world here: the process group's
// constructor is the rendezvous, under the same timeout. A non-empty prefix gives a view of the
// store under that prefix: a store a launcher keeps across restarts (torchrun's) then holds each
// attempt's keys apart, as torch.distributed does.
MR_EXPORT void* mr_store_new(const char* host, int port, int is_master, int world_size, int64_t timeout_ms, const char* prefix) {
  MR_GUARD(nullptr, {
    if (port < 0 || port > 65535) throw std::invalid_argument("port " + std::to_string(port) + " is out of range");
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_master != 0;
    if (world_size > 0) opts.numWorkers = static_cast<std::size_t>(world_size);
    opts.waitWorkers = false;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    QuietGlog quiet;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    c10::intrusive_ptr<c10d::Store> store = tcp;
    if (prefix != nullptr && *prefix != '\0') store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);
    return new StoreHandle{std::move(store), std::move(tcp)};
  })
}
MR_EXPORT void mr_store_free(void* h) { delete static_cast<StoreHandle*>(h); }
MR_EXPORT int mr_store_port(void* h) {
  MR_GUARD(-1, return static_cast<int>(S(h)->tcp->getPort());)
}
MR_EXPORT int mr_store_set(void* h, const char* key, const uint8_t* data, int64_t n) {
  MR_STATUS(S(h)->store->set(key, std::vector<uint8_t>(data, data + n));)
}
// Waits (up to the store's timeout) for the key; *out receives a buffer for mr_buffer_free.
MR_EXPORT int64_t mr_store_get(void* h, const char* key, uint8_t** out) {
  MR_GUARD(-1, {
    QuietGlog quiet;
    auto bytes = S(h)->store->get(key);
    *out = copy_out(bytes);
    return static_cast<int64_t>(bytes.size());
  })
}
// Adds to a counter key and returns its new value; the result is never negative for the
// counters MetaRun keeps, so -1 can signal failure.
MR_EXPORT int64_t mr_store_add(void* h, const char* key, int64_t delta) {
  MR_GUARD(-1, return S(h)->store->add(key, delta);)
}
MR_EXPORT int mr_store_check(void* h, const char** keys, int n) {
  MR_GUARD(-1, return S(h)->store->check(std::vector<std::string>(keys, keys + n)) ? 1 : 0;)
}
MR_EXPORT int mr_store_wait(void* h, const char** keys, int n, int64_t timeout_ms) {
  MR_STATUS(QuietGlog quiet; S(h)->store->wait(std::vector<std::string>(keys, keys + n), std::chrono::milliseconds(timeout_ms));)
}

// ---- process groups ----
MR_EXPORT int mr_nccl_available() {
#ifdef METARUN_HAVE_NCCL
  return 1;
#else
  return 0;
#endif
}

// Gloo picks its network interface the way torch.distributed does: GLOO_SOCKET_IFNAME if set,
// else the address this host's name resolves to (falling back to loopback).
MR_EXPORT void* mr_pg_gloo_new(void* store, int rank, int size, int64_t timeout_ms) {
  MR_GUARD(nullptr, {
#ifndef METARUN_HAVE_GLOO
    (void)store;
    throw std::runtime_error("this MetaRun was built without Gloo's headers (install libgloo-dev and rebuild: rm -rf native/build)");
#else
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname != nullptr && *ifname != '\0')
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    // One thread runs the queued collectives: MetaRun issues them one at a time.
    opts->threads = 1;
    QuietGlog quiet;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(S(store)->store, rank, size, opts);
    return new GroupHandle{std::move(pg), timeout};
#endif
  })
}

MR_EXPORT void* mr_pg_nccl_new(void* store, int rank, int size, int64_t timeout_ms) {
  MR_GUARD(nullptr, {
#ifdef METARUN_HAVE_NCCL
    // Without blocking wait, ProcessGroupNCCL's Work::wait only syncs streams and a dead peer
    // shows up as a hang; with it, wait honours the timeout and throws.
    setenv("NCCL_BLOCKING_WAIT", "1", 0);        // libtorch 1.13 - 2.1
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);  // libtorch 2.2 and later
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    QuietGlog quiet;
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(S(store)->store, rank, size, opts);
    return new GroupHandle{std::move(pg), timeout};
#else
    (void)store;
    throw std::runtime_error(
        "this MetaRun was built against a libtorch without CUDA/NCCL; the NCCL process group needs a CUDA libtorch "
        "(METARUN_LIBTORCH, see README) with nccl.h available at build time");
#endif
  })
}
MR_EXPORT void mr_pg_free(void* h) { delete static_cast<GroupHandle*>(h); }

// Sums the tensors across ranks in place with ONE collective: they are packed into a single flat
// buffer first (what DDP's buckets do), because Gloo's allreduce treats a list as one tensor per
// local device (same shape required) and NCCL has no coalesced variant in this libtorch.
MR_EXPORT int mr_pg_allreduce_sum(void* h, Handle* hs, int n) {
  MR_STATUS({
    auto* g = PG(h);
    if (n <= 0) return 0;
    auto ts = tensors(hs, n);
    std::vector<at::Tensor> flat;
    flat.reserve(ts.size());
    for (auto& t : ts) flat.push_back(t.detach().reshape({-1}));
    std::vector<at::Tensor> buffer{at::cat(flat)};
    wait_for(g, g->group->allreduce(buffer));
    int64_t offset = 0;
    for (auto& t : ts) {
      auto n_el = t.numel();
      t.detach().copy_(buffer[0].narrow(0, offset, n_el).view(t.sizes()));
      offset += n_el;
    }
  })
}
MR_EXPORT int mr_pg_broadcast(void* h, Handle* hs, int n, int root) {
  MR_STATUS({
    auto* g = PG(h);
    for (int i = 0; i < n; i++) {
      // One tensor per call: a list would mean "one per local device" to c10d.
      std::vector<at::Tensor> one{T(hs[i]).detach()};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      wait_for(g, g->group->broadcast(one, opts));
    }
  })
}
// Every rank's tensor (all of one shape), stacked along a new first dimension in rank order.
MR_EXPORT Handle mr_pg_allgather(void* h, Handle x) {
  MR_TENSOR([&] {
    auto* g = PG(h);
    auto input = T(x).detach().contiguous();
    std::vector<at::Tensor> inputs{input};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < g->group->getSize(); r++) outputs[0].push_back(at::empty_like(input));
    wait_for(g, g->group->allgather(outputs, inputs));
    return at::stack(outputs[0]);
  }())
}
MR_EXPORT int mr_pg_barrier(void* h) {
  MR_STATUS(auto* g = PG(h); wait_for(g, g->group->barrier());)
}
