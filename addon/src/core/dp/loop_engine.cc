// Batch-of-one per-sample gradients and their clipped sum (see loop_engine.h). Clipping follows
// ClipSpec: flat, g_i * min(1, C / (||g_i|| + 1e-6)); per-layer, the same factor per group with the
// group's own norm and bound.
#include "core/dp/loop_engine.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include "core/error.h"

namespace bastion::core::dp {
namespace {

constexpr double kClipEpsilon = 1e-6;

double ClipFactor(double norm, double bound) {
  if (std::isinf(bound)) return 1.0;
  return std::min(1.0, bound / (norm + kClipEpsilon));
}

class LoopGradEngine final : public GradEngine {
 public:
  explicit LoopGradEngine(torch::jit::Module& module) : module_(module) {
    if (!module.find_method("forward")) {
      throw Error(ErrorCode::kInvalidArgument, "The model has no forward method");
    }
    for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
      if (!parameter.value.requires_grad()) continue;
      names_.push_back(parameter.name);
      parameters_.push_back(parameter.value);
    }
    if (parameters_.empty()) {
      throw Error(ErrorCode::kInvalidArgument, "The model has no trainable parameter (none requires grad)");
    }
  }

  const std::vector<std::string>& TrainableParameters() const override { return names_; }

  std::vector<ParameterRule> Plan() const override {
    std::vector<ParameterRule> plan;
    for (const std::string& name : names_) plan.push_back({name, "fallback", "batch-of-one reference engine"});
    return plan;
  }

  ClippedSum ComputeClippedSum(const Batch& batch, const LossSpec& loss, const ClipSpec& clip) override {
    const int64_t size = BatchSize(batch);
    ClippedSum result;
    for (const at::Tensor& parameter : parameters_) result.grads.push_back(at::zeros_like(parameter));
    std::vector<double> norms(size);
    std::vector<double> losses(size);
    for (int64_t i = 0; i < size; ++i) {
      auto [sample_loss, grads] = SampleGradients(batch, i, loss);
      losses[i] = sample_loss;
      const std::vector<double> group_norms = GroupNorms(grads, clip);
      double total = 0;
      for (double n : group_norms) total += n * n;
      norms[i] = std::sqrt(total);
      if (clip.groups.empty()) {
        const double factor = ClipFactor(norms[i], clip.max_grad_norm);
        for (size_t p = 0; p < grads.size(); ++p) result.grads[p].add_(grads[p], factor);
      } else {
        for (size_t k = 0; k < clip.groups.size(); ++k) {
          const double factor = ClipFactor(group_norms[k], clip.bounds[k]);
          for (int64_t p : clip.groups[k]) result.grads[p].add_(grads[p], factor);
        }
      }
    }
    result.per_sample_norms = at::tensor(norms, at::kDouble).to(at::kFloat);
    result.losses = at::tensor(losses, at::kDouble).to(at::kFloat);
    return result;
  }

  std::vector<at::Tensor> ComputePerSampleGrads(const Batch& batch, const LossSpec& loss) override {
    const int64_t size = BatchSize(batch);
    std::vector<std::vector<at::Tensor>> per_parameter(parameters_.size());
    for (int64_t i = 0; i < size; ++i) {
      auto grads = SampleGradients(batch, i, loss).second;
      for (size_t p = 0; p < grads.size(); ++p) per_parameter[p].push_back(grads[p]);
    }
    std::vector<at::Tensor> result;
    for (size_t p = 0; p < parameters_.size(); ++p) {
      if (size == 0) {
        std::vector<int64_t> shape{0};
        for (int64_t d : parameters_[p].sizes()) shape.push_back(d);
        result.push_back(at::zeros(shape, parameters_[p].options()));
      } else {
        result.push_back(at::stack(per_parameter[p]));
      }
    }
    return result;
  }

 private:
  static int64_t BatchSize(const Batch& batch) {
    if (!batch.labels.defined() || batch.labels.dim() == 0) {
      throw Error(ErrorCode::kInvalidArgument, "The batch has no labels with a batch dimension");
    }
    if (batch.padding != 0) throw Error(ErrorCode::kInvalidArgument, "The reference engine takes no padding rows");
    const int64_t size = batch.labels.size(0);
    for (size_t k = 0; k < batch.inputs.size(); ++k) {
      if (batch.inputs[k].dim() == 0 || batch.inputs[k].size(0) != size) {
        throw Error(ErrorCode::kInvalidArgument, "Input " + std::to_string(k) + " of the batch does not have " +
                                                     std::to_string(size) + " samples as its first dimension");
      }
    }
    return size;
  }

  // l_i and g_i = ∇θ l_i for sample i alone; parameters the loss does not reach get zeros.
  std::pair<double, std::vector<at::Tensor>> SampleGradients(const Batch& batch, int64_t i, const LossSpec& loss) {
    std::vector<c10::IValue> inputs;
    for (const at::Tensor& input : batch.inputs) inputs.emplace_back(input.narrow(0, i, 1));
    const c10::IValue output = module_.forward(std::move(inputs));
    if (!output.isTensor()) {
      throw Error(ErrorCode::kInvalidArgument, "The model's forward returns " + output.tagKind() + ", not a tensor");
    }
    const at::Tensor sample_loss = PerSampleLoss(output.toTensor(), batch.labels.narrow(0, i, 1), loss).sum();
    std::vector<at::Tensor> grads = torch::autograd::grad({sample_loss}, parameters_, /*grad_outputs=*/{},
                                                          /*retain_graph=*/false, /*create_graph=*/false,
                                                          /*allow_unused=*/true);
    for (size_t p = 0; p < grads.size(); ++p) {
      if (!grads[p].defined()) grads[p] = at::zeros_like(parameters_[p]);
    }
    return {sample_loss.item<double>(), std::move(grads)};
  }

  // The L2 norm of each clipping group of one sample's gradients; one entry (the flat norm) when
  // clipping is flat.
  static std::vector<double> GroupNorms(const std::vector<at::Tensor>& grads, const ClipSpec& clip) {
    auto squared = [&](int64_t p) { return grads[p].to(at::kDouble).pow(2).sum().item<double>(); };
    if (clip.groups.empty()) {
      double total = 0;
      for (size_t p = 0; p < grads.size(); ++p) total += squared(static_cast<int64_t>(p));
      return {std::sqrt(total)};
    }
    std::vector<double> norms;
    for (const auto& group : clip.groups) {
      double total = 0;
      for (int64_t p : group) total += squared(p);
      norms.push_back(std::sqrt(total));
    }
    return norms;
  }

  torch::jit::Module& module_;
  std::vector<std::string> names_;
  std::vector<at::Tensor> parameters_;
};

}  // namespace

std::unique_ptr<GradEngine> MakeLoopGradEngine(torch::jit::Module& module) {
  return std::make_unique<LoopGradEngine>(module);
}

}  // namespace bastion::core::dp
