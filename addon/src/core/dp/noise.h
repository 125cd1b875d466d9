// The randomness of private training: one generator per trainer, seeded with 64 bits from the
// operating system's CSPRNG when the trainer is created and again when it is restored. There is no
// way to choose the seed: a request that could set it could replay the noise and subtract it.
#ifndef BASTION_CORE_DP_NOISE_H_
#define BASTION_CORE_DP_NOISE_H_

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace bastion::core::dp {

// 64 bits from getrandom(2) (blocking until the kernel's pool is initialised). Throws std::runtime_error
// when the kernel refuses; there is deliberately no weaker fallback.
uint64_t OsRandomSeed();

// A CPU generator (ATen's mt19937) seeded by OsRandomSeed().
at::Generator MakeOsSeededGenerator();

// Adds N(0, stddev²) independently to every element of tensor, in place, drawn from generator.
// stddev ≥ 0 and finite; 0 adds nothing and draws nothing.
void AddGaussianNoise(at::Tensor& tensor, double stddev, at::Generator& generator);

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_NOISE_H_
