// The randomness of private training: one generator per trainer, seeded with 64 bits from the
// operating system's CSPRNG when the trainer is created and again when it is restored. There is no
// way to choose the seed: a request that could set it could replay the noise and subtract it.
#ifndef BASTION_CORE_DP_NOISE_H_
#define BASTION_CORE_DP_NOISE_H_

#include <cstdint>

#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace bastion::core::dp {

// 64 bits from getrandom(2) (blocking until the kernel's pool is initialised). Throws std::runtime_error
// when the kernel refuses; there is deliberately no weaker fallback.
uint64_t OsRandomSeed();

// A CPU generator (ATen's mt19937) seeded by OsRandomSeed().
at::Generator MakeOsSeededGenerator();

// A fixed number of generators, each seeded by OsRandomSeed(), so that a large noise tensor is drawn
// on all intra-op threads at once (one generator draws serially: it was a third of a step for an
// embedding of 640k weights). The split into streams does not depend on the thread count.
class NoiseStreams {
 public:
  NoiseStreams();
  // Fresh OS seeds for every stream (at restore).
  void Reseed();
  // tensor ← scale · (tensor + Z), Z with independent N(0, stddev²) elements, in place and in one pass
  // (stddev ≥ 0 and finite; 0 draws nothing); contiguous slices of a large tensor come from different
  // streams, in parallel.
  void AddGaussianNoise(at::Tensor& tensor, double stddev, double scale = 1.0);

 private:
  std::vector<at::Generator> streams_;
};

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_NOISE_H_
