// Gaussian noise for the DP-SGD step (Abadi et al. 2016, Algorithm 1, line "Add noise"), from
// generators only the OS CSPRNG seeds. ATen's CPU generator is mt19937: not a cryptographic
// generator, but its outputs never leave the enclave except mixed into noisy gradients, and every
// trainer starts, and every restore restarts, from fresh OS seeds.
#include "core/dp/noise.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <ATen/Parallel.h>
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace bastion::core::dp {

uint64_t OsRandomSeed() {
  uint64_t seed = 0;
  auto* out = reinterpret_cast<unsigned char*>(&seed);
  size_t filled = 0;
  while (filled < sizeof(seed)) {
    const ssize_t got = getrandom(out + filled, sizeof(seed) - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    filled += static_cast<size_t>(got);
  }
  return seed;
}

at::Generator MakeOsSeededGenerator() { return at::make_generator<at::CPUGeneratorImpl>(OsRandomSeed()); }


namespace {
constexpr size_t kStreams = 8;
// Below this many elements one stream draws them all: splitting costs more than it saves.
constexpr int64_t kParallelNoiseElements = 1 << 15;
}  // namespace

NoiseStreams::NoiseStreams() { Reseed(); }

void NoiseStreams::Reseed() {
  streams_.clear();
  for (size_t k = 0; k < kStreams; ++k) streams_.push_back(MakeOsSeededGenerator());
}

void NoiseStreams::AddGaussianNoise(at::Tensor& tensor, double stddev, double scale) {
  const int64_t numel = tensor.numel();
  if (stddev == 0 || numel == 0) {
    if (scale != 1.0) tensor.mul_(scale);
    return;
  }
  at::Tensor noise = at::empty({numel}, tensor.options());
  const auto count = static_cast<int64_t>(numel < kParallelNoiseElements ? 1 : streams_.size());
  const int64_t slice = (numel + count - 1) / count;
  at::parallel_for(0, count, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) {
      const int64_t begin = k * slice;
      if (begin >= numel) break;
      noise.narrow(0, begin, std::min(slice, numel - begin)).normal_(0.0, stddev * scale, streams_[static_cast<size_t>(k)]);
    }
  });
  at::add_out(tensor, noise.view(tensor.sizes()), tensor, scale);  // scale·Z + scale·tensor
}

}  // namespace bastion::core::dp
