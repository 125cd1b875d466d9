// Per-sample losses: l_i for each sample of a batch, never reduced over the batch, so that the
// gradient of Σ_i l_i with respect to sample i's activations is l_i's alone. Labels are checked
// against the loss before anything is computed, with errors that name the expected dtype and shape.
#include <string>

#include <ATen/ATen.h>

#include "core/dp/grad_engine.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/text.h"

namespace bastion::core::dp {
namespace {

// The API's names (src/vocabulary.ts's LOSSES).
struct LossName {
  const char* name;
  LossSpec::Kind kind;
};

constexpr LossName kLosses[] = {
    {"cross_entropy", LossSpec::Kind::kCrossEntropy},
    {"nll", LossSpec::Kind::kNll},
    {"mse", LossSpec::Kind::kMse},
    {"l1", LossSpec::Kind::kL1},
    {"bce_with_logits", LossSpec::Kind::kBceWithLogits},
};

const char* Name(LossSpec::Kind kind) {
  for (const LossName& entry : kLosses) {
    if (kind == entry.kind) return entry.name;
  }
  return "loss";
}

// Mean over every dimension but the first: [B, ...] -> [B].
at::Tensor MeanPerSample(const at::Tensor& t) { return t.reshape({t.size(0), -1}).mean(1); }

// Regression targets: float labels with the output's shape, or [B] for an output of [B, 1].
at::Tensor TargetsLike(const at::Tensor& output, const at::Tensor& labels, LossSpec::Kind kind) {
  if (!at::isFloatingType(labels.scalar_type())) {
    Refuse(std::string(Name(kind)) + " needs float labels, got " + DtypeName(labels.scalar_type()));
  }
  if (labels.sizes() == output.sizes()) return labels.to(output.scalar_type());
  if (labels.numel() == output.numel()) return labels.reshape(output.sizes()).to(output.scalar_type());
  Refuse(std::string(Name(kind)) + " needs labels shaped as the model output " + ShapeText(output.sizes()) + ", got " +
         ShapeText(labels.sizes()));
}

}  // namespace

std::optional<LossSpec> ParseLoss(const LossConfig& config, std::vector<std::string>& problems) {
  const size_t before = problems.size();
  LossSpec loss;
  const LossName* found = nullptr;
  std::string names;
  for (const LossName& entry : kLosses) {
    if (config.kind == entry.name) found = &entry;
    names += (names.empty() ? "" : ", ") + std::string(entry.name);
  }
  if (found == nullptr) {
    problems.push_back("loss.kind is '" + config.kind + "'; expected one of " + names);
  } else {
    loss.kind = found->kind;
  }
  if (!(config.label_smoothing >= 0 && config.label_smoothing < 1)) {
    problems.push_back("loss.labelSmoothing must be in [0, 1), got " + NumberText(config.label_smoothing));
  } else if (config.label_smoothing != 0 && config.kind != "cross_entropy") {
    problems.push_back("loss.labelSmoothing applies to cross_entropy only");
  }
  loss.label_smoothing = config.label_smoothing;
  if (problems.size() != before) return std::nullopt;
  return loss;
}

at::Tensor PerSampleLoss(const at::Tensor& output, const at::Tensor& labels, const LossSpec& loss) {
  if (output.dim() == 0) Refuse("The model output is a scalar; it must have the batch as first dimension");
  if (labels.dim() == 0 || labels.size(0) != output.size(0)) {
    Refuse("The model output has " + std::to_string(output.size(0)) + " samples (first dimension of " +
           ShapeText(output.sizes()) + ") but the batch has " + std::to_string(labels.dim() ? labels.size(0) : 0) +
           ": outputs must keep the batch dimension");
  }
  switch (loss.kind) {
    case LossSpec::Kind::kCrossEntropy:
    case LossSpec::Kind::kNll: {
      if (labels.scalar_type() != at::kLong) {
        Refuse(std::string(Name(loss.kind)) + " needs I64 class labels, got " + DtypeName(labels.scalar_type()));
      }
      if (labels.dim() != 1 || output.dim() != 2) {
        Refuse(std::string(Name(loss.kind)) + " needs outputs [batch, classes] and labels [batch], got " +
               ShapeText(output.sizes()) + " and " + ShapeText(labels.sizes()));
      }
      const int64_t classes = output.size(1);
      if (labels.numel() > 0 && (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= classes)) {
        Refuse(std::string(Name(loss.kind)) + " labels must be class indices in [0, " + std::to_string(classes) + ")");
      }
      if (loss.kind == LossSpec::Kind::kNll) return at::nll_loss(output, labels, {}, at::Reduction::None);
      if (loss.label_smoothing < 0 || loss.label_smoothing >= 1) Refuse("label_smoothing must be in [0, 1)");
      return at::cross_entropy_loss(output, labels, {}, at::Reduction::None, -100, loss.label_smoothing);
    }
    case LossSpec::Kind::kMse: {
      const at::Tensor target = TargetsLike(output, labels, loss.kind);
      return MeanPerSample((output - target).pow(2));
    }
    case LossSpec::Kind::kL1: {
      const at::Tensor target = TargetsLike(output, labels, loss.kind);
      return MeanPerSample((output - target).abs());
    }
    case LossSpec::Kind::kBceWithLogits: {
      const at::Tensor target = TargetsLike(output, labels, loss.kind);
      return MeanPerSample(at::binary_cross_entropy_with_logits(output, target, {}, {}, at::Reduction::None));
    }
  }
  Refuse("unknown loss");
}

}  // namespace bastion::core::dp
