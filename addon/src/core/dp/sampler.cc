// Poisson and shuffled sampling of dataset indices from the trainer's OS-seeded generator.
#include "core/dp/sampler.h"

#include <algorithm>

#include <ATen/ATen.h>

namespace bastion::core::dp {

at::Tensor PoissonSample(int64_t samples, double sample_rate, at::Generator& generator) {
  if (sample_rate >= 1.0) return at::arange(samples, at::kLong);
  // One Bernoulli(q) draw per sample, in double so that small q are not rounded.
  at::Tensor draws = at::empty({samples}, at::kDouble);
  draws.bernoulli_(sample_rate, generator);
  return draws.nonzero().reshape({-1});
}

ShuffledBatches::ShuffledBatches(int64_t samples, int64_t batch_size)
    : samples_(samples), batch_size_(batch_size), position_(samples) {}

at::Tensor ShuffledBatches::Next(at::Generator& generator) {
  if (position_ >= samples_) {
    permutation_ = at::randperm(samples_, generator, at::TensorOptions().dtype(at::kLong));
    position_ = 0;
  }
  const int64_t count = std::min(batch_size_, samples_ - position_);
  at::Tensor batch = permutation_.narrow(0, position_, count).clone();
  position_ += count;
  return batch;
}

}  // namespace bastion::core::dp
