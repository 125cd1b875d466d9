// The DP-SGD trainer: one TorchScript module, its dataset and its optimizer, stepped one logical
// batch at a time. It owns the privacy-critical parts of a step (Poisson sampling, clipping through
// the GradEngine, Gaussian noise from an OS-seeded generator, the q·N normalisation) and never lets a
// non-finite value reach the parameters. Torch-free interface (pimpl) so the N-API side can include it.
#ifndef BASTION_CORE_DP_TRAINER_H_
#define BASTION_CORE_DP_TRAINER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dp/host.h"
#include "core/dp/parameter_rule.h"

namespace bastion::core::dp {

// The optimizer as the API states it (src/schemas/trainings.ts: type, learningRate, ...).
struct OptimizerConfig {
  std::string type = "sgd";            // "sgd" | "adam" | "adamw" (torch::optim's SGD, Adam, AdamW)
  double learning_rate = 0;            // > 0
  double momentum = 0;                 // sgd, ≥ 0
  double dampening = 0;                // sgd, ≥ 0
  bool nesterov = false;               // sgd; needs momentum > 0 and dampening 0
  std::optional<double> weight_decay;  // ≥ 0; default 0, and 0.01 for adamw (PyTorch's defaults)
  double beta1 = 0.9;                  // adam/adamw, in [0, 1)
  double beta2 = 0.999;                // adam/adamw, in [0, 1)
  double eps = 1e-8;                   // adam/adamw, > 0
};

// A per-layer clipping group: these trainable parameters are clipped together to max_grad_norm.
struct LayerBound {
  std::vector<std::string> parameters;  // qualified names, e.g. "0.weight"
  double max_grad_norm = 0;             // C_k > 0
};

struct TrainerConfig {
  bool is_private = true;
  LossConfig loss;
  OptimizerConfig optimizer;
  // Private only.
  double sample_rate = 0;             // q in (0, 1]
  double noise_multiplier = 0;        // σ ≥ 0
  double max_grad_norm = 0;           // C > 0 (flat clipping; infinity = none, allowed only with σ = 0)
  std::vector<LayerBound> per_layer;  // non-empty = per-layer clipping instead of max_grad_norm
  // Both modes: the largest batch one forward sees (physical batch); 0 = the whole logical batch.
  int64_t max_physical_batch_size = 0;
  // Non-private only: samples per step (≥ 1).
  int64_t batch_size = 0;
  // Both modes: L > 0 makes every step also sum its per-sample losses clamped to [0, L]
  // (StepResult.clipped_loss_sum), a sum of sensitivity L for a noisy loss release; 0 = off.
  double loss_bound = 0;
  // Pre-flight only: synthetic data. A private step rethrows the first failure of a physical batch
  // and treats a non-finite loss, norm or clipped sum as an error instead of dropping samples, and
  // Evaluate fails instead of counting a failing sample as incorrect; every failure of the model's
  // code becomes Error(kInvalidArgument) with the model's own message. On private data this would
  // make a record decide whether the call succeeds and what its message says: never set it there.
  bool fail_fast = false;
};

// The samples of a private step whose contribution was dropped, by reason, as dataset indices
// (ascending within a physical batch). Computed from private data: for the dataset owner's counts
// only, never for the model's author nor for logs.
struct DroppedSamples {
  std::vector<int64_t> exception;            // forward, loss or backward threw (e.g. a label out of range)
  std::vector<int64_t> non_finite_loss;      // l_i is NaN or infinite
  std::vector<int64_t> non_finite_gradient;  // ||g_i|| (or an element of clip(g_i)) is NaN or infinite
  int64_t count() const {
    return static_cast<int64_t>(exception.size() + non_finite_loss.size() + non_finite_gradient.size());
  }
};

struct StepResult {
  int64_t step = 0;        // 1-based number of the step just taken
  int64_t samples = 0;     // size of the logical batch (Poisson: random, may be 0), dropped samples included
  DroppedSamples dropped;  // private training only; always empty in non-private training
  // Σ_i l_i over the batch's contributing samples. Computed from private data without noise: NOT differentially
  // private; callers must not release it (progress events carry it only inside the enclave's trust boundary).
  double loss_sum = 0;
  // Σ_i clamp(l_i, 0, L) with L = TrainerConfig.loss_bound (0 when that is off). One sample changes
  // it by at most L: the caller adds noise before anything derived from it leaves the enclave.
  double clipped_loss_sum = 0;
  double duration_ms = 0;
};

struct Evaluation {
  int64_t samples = 0;
  double mean_loss = 0;            // Σ_i l_i / samples, a failed sample adding 0
  std::optional<double> accuracy;  // cross_entropy, nll (argmax) and bce_with_logits (logit > 0)
  // Samples whose forward or loss threw or whose loss is not finite: judged incorrect and left out of
  // the loss. Computed from the data: for the dataset owner only.
  int64_t failed = 0;
};

struct OutputTensor {
  std::string dtype;  // safetensors name
  std::vector<int64_t> shape;
  std::string bytes;
};

class Trainer {
 public:
  // Loads the archive (already vetted by the caller), wraps the dataset and checks everything that
  // can be checked before a step: config ranges, tensor sizes and dtypes, and one forward of two
  // synthetic samples (zeros of the dataset's dtypes and per-sample shapes: output batch dimension,
  // labels' dtype and shape against the loss, and the engine's batch-layout probe). The probe never
  // sees a record, so whether Create succeeds depends on public information only. Throws
  // Error(kInvalidArgument) naming the problem, Error(kModelLoadFailed) for an archive that does not load.
  static std::unique_ptr<Trainer> Create(std::string model, HostData data, const TrainerConfig& config);
  ~Trainer();

  // One logical step, with the module in training mode (dropout active; the upload check has
  // refused batch statistics).
  // Private: no record can make a step fail. A physical batch that throws, or yields a non-finite
  // per-sample loss, gradient norm or clipped sum, is re-run one sample at a time through the same
  // engine, and exactly the failing samples are dropped (StepResult.dropped); dropping one sample
  // moves the clipped sum by at most C, within the sensitivity the accountant assumes. Throws
  // Error(kNonFinite) only when the noisy sum or the updated parameters are NaN or infinite
  // (post-processing of the DP output), with a message naming no data-derived number.
  // Non-private (the owners allowed it): an exception fails the step, and Error(kNonFinite) names the
  // step when a loss, the gradient or an updated parameter is NaN or infinite.
  // When a step throws, the parameters, the optimizer state and the step count are as before the call.
  // With TrainerConfig.fail_fast (synthetic data only), no sample is dropped: the first exception is
  // rethrown as Error(kInvalidArgument) with the model's message, a non-finite per-sample value as
  // Error(kNonFinite).
  StepResult Step();

  // Mean loss and accuracy without gradients, in eval mode. data == nullptr: the training tensors.
  // A chunk that throws is re-run one sample at a time; a failing sample (exception or non-finite
  // loss) counts as incorrect and adds nothing to the loss (Evaluation.failed counts them). With
  // TrainerConfig.fail_fast (synthetic data only), the first failure throws as in Step.
  Evaluation Evaluate(const HostData* data);

  // The model's output on inputs, in eval mode, without gradients.
  OutputTensor Predict(const std::vector<HostTensor>& inputs);

  // Parameters, optimizer state and step count (a torch::serialize archive).
  std::string State();
  // Loads a State() of a trainer of the same model and optimizer; re-keys the generators from the
  // OS. Throws Error(kInvalidArgument) for a state that does not fit; the trainer is then unchanged.
  void Restore(std::string state);

  // A TorchScript archive of the module with the trained parameters and its original buffers, in
  // the training mode it was loaded with, without .debug_pkl records (source ranges and paths).
  std::string ExportModel();

  int64_t steps() const;
  const std::vector<std::string>& trainable_parameters() const;
  int64_t dataset_size() const;
  // How the engine computes each trainable parameter's per-sample gradients (after Create's probe:
  // from the graph and synthetic inputs only, so public).
  std::vector<ParameterRule> gradient_plan() const;

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_TRAINER_H_
