// Poisson sampling of dataset indices from the CSPRNG, and shuffled batches from the trainer's
// OS-seeded ATen generator (non-private training only).
#include "core/dp/sampler.h"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>

namespace bastion::core::dp {

at::Tensor PoissonSample(int64_t samples, double sample_rate, GaussianStream& stream) {
  if (sample_rate >= 1.0) return at::arange(samples, at::kLong);
  // One draw per sample whatever the outcome, so that the number of words consumed is N.
  std::vector<int64_t> chosen;
  chosen.reserve(static_cast<size_t>(static_cast<double>(samples) * sample_rate * 1.25) + 16);
  for (int64_t i = 0; i < samples; ++i) {
    if (stream.Uniform() < sample_rate) chosen.push_back(i);
  }
  at::Tensor batch = at::empty({static_cast<int64_t>(chosen.size())}, at::kLong);
  if (!chosen.empty()) std::copy(chosen.begin(), chosen.end(), batch.data_ptr<int64_t>());
  return batch;
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
