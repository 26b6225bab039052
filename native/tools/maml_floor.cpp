// The floor under MetaRun's MAML step: one Omniglot 5-way 1-shot task (conv4, 64 filters,
// stride-2 convolutions, batch norm with batch statistics, one inner step at α = 0.4, one query
// per class) in plain libtorch C++ on one thread, with no binding in between. Comparing its time
// per task with `metarun bench` (per-task core time = workers × seconds per iteration ÷ tasks)
// shows what the C# layer costs; docs/performance.md has the figures.
//
//   cmake --build native/build --target maml_floor && OPENBLAS_NUM_THREADS=1 native/build/maml_floor [tasks]
//
// Each pair of tasks alternates a plain and a channels-last run, so that both see the same
// machine load (this VM's speed drifts by ±15% between runs).
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

using torch::Tensor;

static Tensor forward(const Tensor& input, const std::vector<Tensor>& w, bool channelsLast) {
  auto format = channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  Tensor x = input.contiguous(format);
  for (int b = 0; b < 4; b++) {
    x = at::conv2d(x, w[4 * b].contiguous(format), w[4 * b + 1], {2, 2}, {1, 1});
    x = at::batch_norm(x, w[4 * b + 2], w[4 * b + 3], {}, {}, true, 0.1, 1e-5, true).relu();
  }
  return at::linear(x.mean({2, 3}), w[16], w[17]);
}

int main(int argc, char** argv) {
  const int tasks = argc > 1 ? std::atoi(argv[1]) : 200;
  at::set_num_threads(1);
  torch::manual_seed(0);
  std::vector<Tensor> params;
  int64_t channels = 1;
  for (int b = 0; b < 4; b++) {
    params.push_back(torch::randn({64, channels, 3, 3}) * 0.1);
    params.push_back(torch::zeros({64}));
    params.push_back(torch::ones({64}));
    params.push_back(torch::zeros({64}));
    channels = 64;
  }
  params.push_back(torch::randn({5, 64}) * 0.1);
  params.push_back(torch::zeros({5}));
  for (auto& p : params) p.requires_grad_(true);
  const auto support = torch::rand({5, 1, 28, 28}), query = torch::rand({5, 1, 28, 28}), labels = torch::arange(5);

  auto task = [&](bool secondOrder, bool channelsLast) {
    auto loss = torch::cross_entropy_loss(forward(support, params, channelsLast), labels);
    auto grads = torch::autograd::grad({loss}, params, {}, true, secondOrder);
    std::vector<Tensor> fast;
    for (size_t i = 0; i < params.size(); i++) fast.push_back(params[i] - 0.4 * grads[i]);
    auto outer = torch::cross_entropy_loss(forward(query, fast, channelsLast), labels);
    torch::autograd::grad({outer}, params, {}, false, false, true);
  };

  for (bool secondOrder : {true, false}) {
    for (int i = 0; i < 20; i++) task(secondOrder, i % 2 == 1);  // warm-up: oneDNN primitives, allocator
    double ms[2] = {0, 0};
    for (int i = 0; i < 2 * tasks; i++) {
      auto start = std::chrono::steady_clock::now();
      task(secondOrder, i % 2 == 1);
      ms[i % 2] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    }
    std::cout << (secondOrder ? "MAML  " : "FOMAML") << " ms per task: " << ms[0] / tasks << " (channels-last: " << ms[1] / tasks
              << ") over " << tasks << " tasks, one thread\n";
  }
}
