// A parameter added, subtracted or multiplied elementwise: aten::add/sub(a, w, alpha), add/sub(w, a,
// alpha), mul(a, w), mul(w, a), with w broadcast against the activation a (a positional embedding
// `x + self.pos`, a scale `x * self.gamma`, a bias outside a linear). For z = a + α·w,
// g_i(w) = α·δ_i, and for z = a ⊙ w, g_i(w) = δ_i ⊙ a_i, each summed over the dimensions w is
// broadcast along (NumPy rules: w aligned with z's trailing dimensions). The batch must be z's first
// dimension and w must not span it (size 1 there, or fewer dimensions).
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {
namespace {

constexpr const char* kRule = "elementwise";

// g [B, *z.shape[1:]] summed down to [B, *shape], shape aligned with the trailing dims of g.
at::Tensor SumToShape(const at::Tensor& g, const std::vector<int64_t>& shape) {
  const int64_t rank = g.dim();
  const int64_t lead = rank - static_cast<int64_t>(shape.size());
  if (lead < 0) ShapeError(kRule, "the parameter has more dimensions than the node's output");
  if (lead == 0 && shape[0] != 1) ShapeError(kRule, "the parameter spans the batch dimension");
  std::vector<int64_t> broadcast, leading;
  for (int64_t j = 1; j < rank; ++j) {
    const int64_t k = j - lead;
    if (k < 0) {
      leading.push_back(j);
    } else if (shape[static_cast<size_t>(k)] == 1 && g.size(j) != 1) {
      broadcast.push_back(j);
    } else if (shape[static_cast<size_t>(k)] != g.size(j)) {
      ShapeError(kRule, "the parameter's shape does not broadcast to the node's output");
    }
  }
  at::Tensor out = g;
  if (!broadcast.empty()) out = out.sum(broadcast, /*keepdim=*/true);
  if (!leading.empty()) out = out.sum(leading);
  std::vector<int64_t> target{g.size(0)};
  target.insert(target.end(), shape.begin(), shape.end());
  return out.reshape(target);
}

class ElementwiseLayer final : public Layer {
 public:
  ElementwiseLayer(bool product, double factor) : product_(product), factor_(factor) {}

  std::string Rule() const override { return kRule; }

  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path /*path*/) const override {
    if (a.dim() < 1 || delta.dim() < 1 || a.size(0) != delta.size(0)) {
      ShapeError(kRule, "input and output gradient do not have the same batch");
    }
    if (product_ && a.dim() != delta.dim()) ShapeError(kRule, "the activation does not have the output's rank");
    const at::Tensor g = product_ ? delta * a : (factor_ == 1.0 ? delta : delta * factor_);
    std::vector<at::Tensor> per_sample;
    for (const Slot& slot : slots) per_sample.push_back(SumToShape(g, slot.shape));
    return std::make_unique<MaterializedBatch>(std::move(per_sample));
  }

 private:
  bool product_;
  double factor_;  // ∂z/∂w for a sum
};

}  // namespace

MatchResult MatchElementwise(const OpView& op) {
  if (op.args.size() < 2) return {};
  const OpArg& x = op.args[0];
  const OpArg& y = op.args[1];
  const bool w_first = x.kind == OpArg::Kind::kParameter;
  const bool w_second = y.kind == OpArg::Kind::kParameter;
  if (!w_first && !w_second) return {};
  const OpArg& other = w_first ? y : x;
  if (other.kind != OpArg::Kind::kTensor) {
    return {nullptr, op.kind + " of a parameter and something that is not an activation"};
  }
  const bool product = op.kind == "aten::mul";
  double factor = 1.0;
  if (!product) {
    if (op.args.size() != 3) return {nullptr, op.kind + " with an unexpected signature"};
    const auto alpha = ConstantDouble(op.args[2]);
    if (!alpha) return {nullptr, op.kind + " with a non-constant alpha"};
    // add: z = x + α·y; sub: z = x − α·y.
    const double sign = op.kind == "aten::sub" ? -1.0 : 1.0;
    factor = w_first ? 1.0 : sign * *alpha;
  } else if (op.args.size() != 2) {
    return {nullptr, op.kind + " with an unexpected signature"};
  }
  auto layer = std::make_unique<ElementwiseLayer>(product, factor);
  layer->activation_arg = w_first ? 1 : 0;
  AddSlotIfParameter(*layer, op, w_first ? 0 : 1);
  return {std::move(layer), ""};
}

}  // namespace bastion::core::dp::grad_sample
