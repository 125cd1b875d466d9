// The randomness of private training. Every generator is seeded or keyed from the operating system's
// CSPRNG when the trainer is created and again when it is restored. There is no way to choose a seed:
// a request that could set it could replay the noise and subtract it.
#ifndef BASTION_CORE_DP_NOISE_H_
#define BASTION_CORE_DP_NOISE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "core/dp/gaussian.h"

namespace bastion::core::dp {

uint64_t OsRandomSeed();

// A CPU generator (ATen's mt19937) seeded by OsRandomSeed(), for the shuffled batches of non-private
// training only (Poisson sampling draws from a GaussianStream: sampler.h).
at::Generator MakeOsSeededGenerator();

// The gradient noise of a trainer, from a fixed number of Gaussian streams (gaussian.h), so that a
// large tensor is drawn on all intra-op threads at once: contiguous slices of it come from different
// streams, and the split does not depend on the thread count.
class NoiseStreams {
 public:
  NoiseStreams();
  // New keys for every stream (at restore).
  void Reseed();
  // grads[p] ← scale · (grads[p] + Z), Z with independent N(0, stddev²) elements (stddev > 0 and
  // finite), in place and in one pass that also checks the result. Returns the index of the first
  // gradient with a NaN or infinite element afterwards, or -1.
  int64_t AddGaussianNoise(std::vector<at::Tensor>& grads, double stddev, double scale);

 private:
  bool AddToOne(at::Tensor& tensor, double stddev, double scale);

  std::vector<std::unique_ptr<GaussianStream>> streams_;
};

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_NOISE_H_
