// The contract between the DP trainer and the per-sample gradient engine. The engine owns how exact
// per-sample gradients are obtained for a TorchScript module (graph surgery with one rule per
// operator family, ghost norms and book-keeping where cheaper, a batch-of-one fallback for whatever
// no rule covers); the trainer owns sampling, noise, the optimizer and checkpoints. The trainer only
// ever sees clipped sums: per-sample gradients are materialised for tests and analysis alone.
#ifndef BASTION_CORE_DP_GRAD_ENGINE_H_
#define BASTION_CORE_DP_GRAD_ENGINE_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/dp/host.h"
#include "core/dp/parameter_rule.h"

namespace torch::jit {
struct Module;
}  // namespace torch::jit

namespace bastion::core::dp {

// The per-sample loss l_i(θ) whose gradients are clipped. Reduction is always per sample: the
// engine differentiates sum_i l_i, whose gradient w.r.t. sample i's activations is l_i's alone.
struct LossSpec {
  enum class Kind { kCrossEntropy, kNll, kMse, kL1, kBceWithLogits };
  Kind kind = Kind::kCrossEntropy;
  double label_smoothing = 0.0;  // cross_entropy only, in [0, 1)
};

// Per-sample clipping: each sample's gradient g_i is scaled by min(1, C / (||g_i|| + 1e-6)).
// flat: one norm over all trainable parameters with bound max_grad_norm.
// per-layer: groups[k] lists parameter indices (into TrainableParameters()) with bound bounds[k];
// every trainable parameter is in exactly one group.
struct ClipSpec {
  double max_grad_norm = std::numeric_limits<double>::infinity();  // C; infinity = no clipping
  std::vector<std::vector<int64_t>> groups;                        // empty = flat
  std::vector<double> bounds;                                      // one per group
};

// One physical batch: the model's inputs (forward(inputs[0], inputs[1], ...)), each with the batch
// as first dimension, and the labels (first dimension = batch).
struct Batch {
  std::vector<at::Tensor> inputs;
  at::Tensor labels;
  // The last `padding` rows are copies of real ones that only make the batch a size seen before (the
  // trainer's PaddedSize): they run through the model, but their clip factor is 0 and their losses and
  // norms are not returned. Only the graph engine's ComputeClippedSum takes padding; the rest refuse it.
  int64_t padding = 0;
};

struct ClippedSum {
  // Σ_i clip(g_i) for each trainable parameter, in TrainableParameters() order, shaped as it.
  std::vector<at::Tensor> grads;
  // ||g_i|| before clipping, [batch] float (flat norm; for per-layer clipping the norm over all groups).
  at::Tensor per_sample_norms;
  // l_i, [batch] float.
  at::Tensor losses;
};

class GradEngine {
 public:
  virtual ~GradEngine() = default;

  // The parameters that require grad, named_parameters() order; grads are reported in this order.
  virtual const std::vector<std::string>& TrainableParameters() const = 0;
  virtual std::vector<ParameterRule> Plan() const = 0;

  // Clipped per-sample gradient sum of one physical batch (batch size ≥ 1). Must give the numbers
  // of materialising every g_i and clipping it, whatever path it takes. Does not touch .grad.
  virtual ClippedSum ComputeClippedSum(const Batch& batch, const LossSpec& loss, const ClipSpec& clip) = 0;

  // Every g_i materialised: result[p] has shape [batch, *param.shape]. For tests and analysis.
  virtual std::vector<at::Tensor> ComputePerSampleGrads(const Batch& batch, const LossSpec& loss) = 0;
};

// Analyses the module's forward graph (inlined, mutation removed) and returns the engine for it. The
// module is used as is (its parameters are the ones trained, in place); it is not modified otherwise.
// Throws core::Error when the module cannot be trained at all (no forward, no trainable parameter).
std::unique_ptr<GradEngine> MakeGradEngine(torch::jit::Module& module);

// The loss spec of a loss as the API names it (src/vocabulary.ts's LOSSES), or nullopt after appending
// to `problems` every reason it is refused: an unknown kind, a label smoothing outside [0, 1), or one
// with another loss than cross_entropy. The one parser of loss names.
std::optional<LossSpec> ParseLoss(const LossConfig& config, std::vector<std::string>& problems);

// The per-sample losses l_i of model outputs for labels, [batch] float. Throws core::Error
// (kInvalidArgument) for labels of the wrong dtype or shape for the loss, or outputs whose first
// dimension is not the batch size.
at::Tensor PerSampleLoss(const at::Tensor& output, const at::Tensor& labels, const LossSpec& loss);

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_GRAD_ENGINE_H_
