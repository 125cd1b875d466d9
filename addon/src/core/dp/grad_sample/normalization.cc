// aten::layer_norm and aten::group_norm: g_i(γ) = Σ x̂_i·δ_i and g_i(β) = Σ δ_i over every position of
// sample i (positions before the normalised shape for LayerNorm, the spatial positions of each
// channel for GroupNorm), with x̂ recomputed from the input in float64 exactly as the forward
// normalises it. Per-sample gradients are [B, C]-sized, so they are always materialised.
#include <string>

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
    if (a.dim() <= nd || !a.sizes().equals(delta.sizes()))
      ShapeError("layer_norm", "expected a batched input shaped as its output gradient");
    const int64_t batch = a.size(0);
    int64_t features = 1;
    for (int64_t n : normalized_) features *= n;
    const at::Tensor x = a.to(at::kDouble).reshape({-1, features});
    const at::Tensor mean = x.mean(at::IntArrayRef{1}, /*keepdim=*/true);
    const at::Tensor var = (x - mean).pow(2).mean(at::IntArrayRef{1}, /*keepdim=*/true);
    const at::Tensor normalized =
        ((x - mean) * (var + eps_).rsqrt()).to(delta.scalar_type()).reshape({batch, -1, features});
    const at::Tensor d = delta.reshape({batch, -1, features});
    std::vector<int64_t> shape{batch};
    shape.insert(shape.end(), normalized_.begin(), normalized_.end());
    std::vector<at::Tensor> grads;
    for (const Slot& slot : slots) {
      grads.push_back((slot.arg == 2 ? (normalized * d).sum(1) : d.sum(1)).reshape(shape));
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
    const at::Tensor x = a.to(at::kDouble).reshape({batch, groups_, -1});
    const at::Tensor mean = x.mean(at::IntArrayRef{2}, /*keepdim=*/true);
    const at::Tensor var = (x - mean).pow(2).mean(at::IntArrayRef{2}, /*keepdim=*/true);
    const at::Tensor normalized =
        ((x - mean) * (var + eps_).rsqrt()).to(delta.scalar_type()).reshape({batch, channels, -1});
    const at::Tensor d = delta.reshape({batch, channels, -1});
    std::vector<at::Tensor> grads;
    for (const Slot& slot : slots) grads.push_back(slot.arg == 2 ? (normalized * d).sum(2) : d.sum(2));
    return std::make_unique<MaterializedBatch>(std::move(grads));
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
