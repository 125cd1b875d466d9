// Gaussian noise for the DP-SGD step (Abadi et al. 2016, Algorithm 1, line "Add noise").
#include "core/dp/noise.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

namespace bastion::core::dp {

uint64_t OsRandomSeed() {
  uint64_t seed = 0;
  OsRandomBytes(&seed, sizeof(seed));
  return seed;
}

at::Generator MakeOsSeededGenerator() { return at::make_generator<at::CPUGeneratorImpl>(OsRandomSeed()); }

namespace {
constexpr size_t kStreams = 8;
// Below this many elements one stream draws them all: splitting costs more than it saves.
constexpr int64_t kParallelNoiseElements = 1 << 15;

// The slice of [0, count) that stream k draws.
std::pair<int64_t, int64_t> Slice(int64_t count, int64_t k, int64_t streams) {
  const int64_t slice = (count + streams - 1) / streams;
  const int64_t begin = std::min(count, k * slice);
  return {begin, std::min(slice, count - begin)};
}
}  // namespace

NoiseStreams::NoiseStreams() { Reseed(); }

void NoiseStreams::Reseed() {
  streams_.clear();
  for (size_t k = 0; k < kStreams; ++k) streams_.push_back(std::make_unique<GaussianStream>());
}

bool NoiseStreams::AddToOne(at::Tensor& tensor, double stddev, double scale) {
  const int64_t numel = tensor.numel();
  const bool direct =
      tensor.is_contiguous() && (tensor.scalar_type() == at::kFloat || tensor.scalar_type() == at::kDouble);
  // Anything else (a strided view, half precision) goes through a double copy.
  at::Tensor work = direct ? tensor : tensor.reshape({numel}).to(at::kDouble, /*non_blocking=*/false, /*copy=*/true);
  const auto count = static_cast<int64_t>(numel < kParallelNoiseElements ? 1 : streams_.size());
  std::atomic<bool> finite{true};
  at::parallel_for(0, count, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) {
      const auto [begin, length] = Slice(numel, k, count);
      if (length == 0) continue;
      GaussianStream& stream = *streams_[static_cast<size_t>(k)];
      const bool ok = work.scalar_type() == at::kFloat
                          ? stream.AddScaled(work.data_ptr<float>() + begin, length, stddev * scale, scale)
                          : stream.AddScaled(work.data_ptr<double>() + begin, length, stddev * scale, scale);
      if (!ok) finite = false;
    }
  });
  if (!direct) {
    tensor.copy_(work.view(tensor.sizes()));
    return tensor.isfinite().all().item<bool>();  // the copy back may overflow a narrower type
  }
  return finite;
}

int64_t NoiseStreams::AddGaussianNoise(std::vector<at::Tensor>& grads, double stddev, double scale) {
  if (!(stddev > 0)) throw std::invalid_argument("AddGaussianNoise needs a noise stddev > 0");
  for (size_t p = 0; p < grads.size(); ++p) {
    if (grads[p].numel() > 0 && !AddToOne(grads[p], stddev, scale)) return static_cast<int64_t>(p);
  }
  return -1;
}

}  // namespace bastion::core::dp
