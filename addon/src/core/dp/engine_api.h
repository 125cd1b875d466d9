// Plain-data entry points to the per-sample gradient engine for the N-API side (torch-free, so the
// binding TU stays quick to compile): gradient plans, per-sample gradients (engine or batch-of-one
// loop) and clipped sums of a model held as archive bytes. For analysis and tests; the trainer
// holds a GradEngine itself.
#ifndef BASTION_CORE_DP_ENGINE_API_H_
#define BASTION_CORE_DP_ENGINE_API_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/dp/host.h"
#include "core/dp/parameter_rule.h"

namespace bastion::core::dp {

struct FloatArray {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct HostClip {
  double max_grad_norm = 0.0;
  std::vector<std::vector<int64_t>> groups;
  std::vector<double> bounds;
};

struct HostClippedSum {
  std::vector<FloatArray> grads;
  std::vector<float> per_sample_norms;
  std::vector<float> losses;
};

// Every call copies the tensors it is given before the model sees them; they need to live only
// through the call.

// The engine's plan. With probe_inputs (a batch of at least two), the batch-layout check runs first.
std::vector<ParameterRule> GradientPlan(std::string model, const std::vector<HostTensor>& probe_inputs);

// Every g_i, [batch, *shape] per trainable parameter: by the engine, or (loop) by autograd through
// forward on each sample alone.
std::vector<FloatArray> PerSampleGradients(std::string model, const std::vector<HostTensor>& inputs,
                                           const HostTensor& labels, const LossConfig& loss, bool loop);

// path: "auto", "materialize" or "ghost"; padding: the last rows are copies that count for nothing
// (Batch::padding), as the trainer pads a private batch.
HostClippedSum ClippedGradientSum(std::string model, const std::vector<HostTensor>& inputs, const HostTensor& labels,
                                  const LossConfig& loss, const HostClip& clip, const std::string& path,
                                  int64_t padding = 0);

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_ENGINE_API_H_
