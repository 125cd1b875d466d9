// Gaussian noise for the DP-SGD step (Abadi et al. 2016, Algorithm 1, line "Add noise"), from a
// generator only the OS CSPRNG seeds. ATen's CPU generator is mt19937: not a cryptographic
// generator, but its outputs never leave the enclave except mixed into noisy gradients, and every
// trainer starts from a fresh OS seed.
#include "core/dp/noise.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

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

void AddGaussianNoise(at::Tensor& tensor, double stddev, at::Generator& generator) {
  if (stddev == 0) return;
  at::Tensor noise = at::empty_like(tensor);
  noise.normal_(0.0, stddev, generator);
  tensor.add_(noise);
}

}  // namespace bastion::core::dp
