// Which samples make up each logical batch. Private training samples by Poisson sampling (each
// sample independently with probability q), which is what the RDP/PLD accountants assume
// (Mironov et al. 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"); fixed-size
// shuffled batches are for non-private training only.
#ifndef BASTION_CORE_DP_SAMPLER_H_
#define BASTION_CORE_DP_SAMPLER_H_

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace bastion::core::dp {

// The indices (int64, ascending) of the samples of one Poisson-sampled batch of a dataset of
// `samples` elements: each is included independently with probability sample_rate in (0, 1].
// The batch may be empty.
at::Tensor PoissonSample(int64_t samples, double sample_rate, at::Generator& generator);

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
