// aten::layer_norm and aten::group_norm: g_i(γ) = Σ x̂_i·δ_i and g_i(β) = Σ δ_i over every position of
// sample i (positions before the normalised shape for LayerNorm, the spatial positions of each
// channel for GroupNorm). x̂ and its statistics come from the forward's own kernels on the input, in
// its dtype, so they are the numbers the forward (and the one-sample reference's backward) used.
// Per-sample gradients are [B, C]-sized, so they are always materialised.
//   LayerNorm: x̂ = native_layer_norm(x) without affine, then δ·x̂ summed over the rows of each sample.
//   GroupNorm: the weight and bias gradients of the layer's own backward with the batch folded into
//   the channels and groups (N = 1, B·C channels, B·G groups): per channel of [1, B·C] they are
//   Σ_s (δ·x − δ·mean)·rstd and Σ_s δ, i.e. g_i(γ), g_i(β), in one pass over δ and x and no x̂.
#include <string>
#include <tuple>

#include <ATen/ATen.h>

#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {
namespace {

class LayerNormLayer final : public Layer {
 public:
  LayerNormLayer(std::vector<int64_t> normalized, double eps) : normalized_(std::move(normalized)), eps_(eps) {}

  std::string Rule() const override { return "layer_norm"; }

  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path /*path*/) const override {
    const int64_t nd = static_cast<int64_t>(normalized_.size());
    if (a.dim() <= nd || !a.sizes().equals(delta.sizes()) || !a.sizes().slice(a.dim() - nd).equals(normalized_))
      ShapeError("layer_norm",
                 "expected a batched input shaped as its output gradient, ending in the normalised shape");
    const int64_t batch = a.size(0);
    int64_t features = 1;
    for (int64_t n : normalized_) features *= n;
    std::vector<int64_t> shape{batch};
    shape.insert(shape.end(), normalized_.begin(), normalized_.end());
    const at::Tensor d = delta.reshape({batch, -1, features});
    std::vector<at::Tensor> grads;
    for (const Slot& slot : slots) {
      if (slot.arg != 2) {
        grads.push_back(d.sum(1).view(shape));
        continue;
      }
      // x̂ without γ, β: what the forward computed before its affine step.
      at::Tensor normalized = std::get<0>(at::native_layer_norm(a.contiguous(), normalized_, {}, {}, eps_));
      normalized = normalized.view({batch, -1, features}).mul_(d);
      grads.push_back((normalized.size(1) == 1 ? normalized : normalized.sum(1)).view(shape));
    }
    return std::make_unique<MaterializedBatch>(std::move(grads));
  }

 private:
  std::vector<int64_t> normalized_;
  double eps_;
};

class GroupNormLayer final : public Layer {
 public:
  GroupNormLayer(int64_t groups, double eps) : groups_(groups), eps_(eps) {}

  std::string Rule() const override { return "group_norm"; }

  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path /*path*/) const override {
    if (a.dim() < 2 || !a.sizes().equals(delta.sizes()) || a.size(1) % groups_ != 0) {
      ShapeError("group_norm", "expected a batched [B, C, ...] input shaped as its output gradient");
    }
    const int64_t batch = a.size(0);
    const int64_t channels = a.size(1);
    const int64_t positions = batch * channels == 0 ? 0 : a.numel() / (batch * channels);
    bool need_gamma = false, need_beta = false;
    for (const Slot& slot : slots) (slot.arg == 2 ? need_gamma : need_beta) = true;
    const at::Tensor x = a.contiguous();
    // mean and rstd [B, G] from the forward's kernel (its output, x̂, is not used).
    const auto moments = at::native_group_norm(x, {}, {}, batch, channels, positions, groups_, eps_);
    const int64_t folded = batch * channels;
    // The backward allocates dγ like γ, and reads γ only for dx, which is not requested.
    const at::Tensor gamma = at::empty({folded}, x.options());
    const auto grads = at::native_group_norm_backward(
        delta.contiguous().view({1, folded, positions}), x.view({1, folded, positions}),
        std::get<1>(moments).view({1, batch * groups_}), std::get<2>(moments).view({1, batch * groups_}), gamma,
        /*N=*/1, folded, positions, batch * groups_, {false, need_gamma, need_beta});
    std::vector<at::Tensor> per_sample;
    for (const Slot& slot : slots) {
      per_sample.push_back((slot.arg == 2 ? std::get<1>(grads) : std::get<2>(grads)).view({batch, channels}));
    }
    return std::make_unique<MaterializedBatch>(std::move(per_sample));
  }

 private:
  int64_t groups_;
  double eps_;
};

}  // namespace
MatchResult MatchLayerNorm(const OpView& op) {
  // layer_norm(input, normalized_shape, weight?, bias?, eps, cudnn_enable)
  if (op.args.size() < 5) return {nullptr, "aten::layer_norm with an unknown signature"};
  const auto normalized = ConstantInts(op.args[1]);
  const auto eps = ConstantDouble(op.args[4]);
  if (!normalized || !eps) return {nullptr, "aten::layer_norm with a non-constant normalized_shape or eps"};
  auto layer = std::make_unique<LayerNormLayer>(*normalized, *eps);
  layer->activation_arg = 0;
  AddSlotIfParameter(*layer, op, 2);
  AddSlotIfParameter(*layer, op, 3);
  if (layer->slots.empty()) return {};
  return {std::move(layer), ""};
}

MatchResult MatchGroupNorm(const OpView& op) {
  // group_norm(input, num_groups, weight?, bias?, eps, cudnn_enabled)
  if (op.args.size() < 5) return {nullptr, "aten::group_norm with an unknown signature"};
  const auto groups = ConstantInt(op.args[1]);
  const auto eps = ConstantDouble(op.args[4]);
  if (!groups || *groups < 1 || !eps) return {nullptr, "aten::group_norm with a non-constant num_groups or eps"};
  auto layer = std::make_unique<GroupNormLayer>(*groups, *eps);
  layer->activation_arg = 0;
  AddSlotIfParameter(*layer, op, 2);
  AddSlotIfParameter(*layer, op, 3);
  if (layer->slots.empty()) return {};
  return {std::move(layer), ""};
}

}  // namespace bastion::core::dp::grad_sample
