// Which samples make up each logical batch. Private training samples by Poisson sampling (each
// sample independently with probability q), which is what the RDP/PLD accountants assume
// (Mironov et al. 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"), drawing
// from the same kind of CSPRNG as the noise (gaussian.h): a predictable sampler would let whoever
// predicts it know which records a step used, and the amplification by sampling would be void.
// Fixed-size shuffled batches are for non-private training only and keep ATen's generator.
#ifndef BASTION_CORE_DP_SAMPLER_H_
#define BASTION_CORE_DP_SAMPLER_H_

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "core/dp/gaussian.h"

namespace bastion::core::dp {

// The indices (int64, ascending) of the samples of one Poisson-sampled batch of a dataset of
// `samples` elements: sample i is included when the i-th uniform of `stream` is below sample_rate
// in (0, 1] (all of them for q ≥ 1, drawing nothing). The batch may be empty.
at::Tensor PoissonSample(int64_t samples, double sample_rate, GaussianStream& stream);

// Fixed-size batches of a random permutation, reshuffled at each epoch. The last batch of an epoch
// holds the remainder (as torch.utils.data.DataLoader(shuffle=True, drop_last=False)).
class ShuffledBatches {
 public:
  ShuffledBatches(int64_t samples, int64_t batch_size);

  // The next batch's indices (int64); starts a new epoch (a new permutation) when one ends.
  at::Tensor Next(at::Generator& generator);

  // Forgets the current permutation: the next call starts a fresh epoch.
  void Reset() { position_ = samples_; }

 private:
  int64_t samples_;
  int64_t batch_size_;
  int64_t position_;
  at::Tensor permutation_;
};

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_SAMPLER_H_
