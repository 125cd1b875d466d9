// 1-D and 2-D convolutions, scripted (aten::conv1d / aten::conv2d, padding as ints or "valid"/"same")
// and traced (aten::_convolution, aten::convolution, not transposed), with any stride, padding,
// dilation and groups. The input is unfolded with im2col to U_i [C·k, L] (a 1-D convolution is a
// 2-D one of height 1); per group, g_i(W) = δ_i U_iᵀ and g_i(b) = Σ_l δ_il. Ghost norm: <U_iᵀU_i,
// δ_iᵀδ_i> over L×L Gram matrices, which only pays off for small L (the cost rule decides); the
// clipped sum is one product per group over (sample, position).
#include <string>

#include <ATen/ATen.h>

#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {
namespace {

struct ConvConfig {
  int64_t spatial = 2;  // 1 or 2
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  std::vector<int64_t> weight_shape;  // [O, C/G, k...], empty when the weight is not known
};

// The unfolded input and output gradient, per group: U [B, G, Kg, L], D [B, G, Og, L].
struct Unfolded {
  at::Tensor u, d;
  int64_t batch, groups, kg, og, positions;
};

std::string RuleName(const ConvConfig& config) { return config.spatial == 1 ? "conv1d" : "conv2d"; }

class ConvBatch final : public LayerBatch {
 public:
  ConvBatch(Unfolded unfolded, std::vector<bool> is_weight, std::vector<int64_t> weight_shape, bool ghost)
      : x_(std::move(unfolded)), is_weight_(std::move(is_weight)), weight_shape_(std::move(weight_shape)), ghost_(ghost) {}

  at::Tensor PerSample(size_t slot) override {
    if (!is_weight_.at(slot)) return x_.d.sum(3).reshape({x_.batch, x_.groups * x_.og});  // [B, O]
    std::vector<int64_t> shape{x_.batch};
    shape.insert(shape.end(), weight_shape_.begin(), weight_shape_.end());
    return at::matmul(x_.d, x_.u.transpose(2, 3)).reshape(shape);  // [B, G, Og, Kg] -> [B, O, C/G, k...]
  }

  at::Tensor NormSquared(size_t slot) override {
    if (!ghost_ || !is_weight_.at(slot)) return LayerBatch::NormSquared(slot);
    const at::Tensor gram_u = at::matmul(x_.u.transpose(2, 3), x_.u);  // [B, G, L, L]
    const at::Tensor gram_d = at::matmul(x_.d.transpose(2, 3), x_.d);
    return (gram_u * gram_d).sum(at::IntArrayRef{1, 2, 3});
  }

  at::Tensor WeightedSum(size_t slot, const at::Tensor& factors) override {
    const at::Tensor c = factors.to(x_.d.scalar_type()).view({x_.batch, 1, 1, 1});
    if (!is_weight_.at(slot)) return (x_.d * c).sum(at::IntArrayRef{0, 3}).reshape({x_.groups * x_.og});
    if (!ghost_) return LayerBatch::WeightedSum(slot, factors);
    // [G, Og, B·L] x [G, B·L, Kg]
    const at::Tensor d = (x_.d * c).permute({1, 2, 0, 3}).reshape({x_.groups, x_.og, -1});
    const at::Tensor u = x_.u.permute({1, 0, 3, 2}).reshape({x_.groups, -1, x_.kg});
    return at::bmm(d, u).reshape(weight_shape_);
  }

 private:
  Unfolded x_;
  std::vector<bool> is_weight_;
  std::vector<int64_t> weight_shape_;
  bool ghost_;
};

class ConvLayer final : public Layer {
 public:
  explicit ConvLayer(ConvConfig config) : config_(std::move(config)) {}

  std::string Rule() const override { return RuleName(config_); }
  bool HasGhost() const override { return true; }

  double Cost(Path path, const at::Tensor& a, const at::Tensor& delta) const override {
    if (config_.weight_shape.empty() || delta.dim() < 2) return path == Path::kMaterialize ? 0.0 : 1e300;
    const double batch = static_cast<double>(delta.size(0));
    const double out = static_cast<double>(delta.size(1));
    const double positions = static_cast<double>(delta.numel()) / std::max(1.0, batch * out);
    double k = 1;  // C/G · kernel elements
    for (size_t i = 1; i < config_.weight_shape.size(); ++i) k *= static_cast<double>(config_.weight_shape[i]);
    const double groups = static_cast<double>(config_.groups);
    const double product = batch * positions * k * out;  // per-sample product, or the clipped-sum product
    if (path == Path::kMaterialize) return product + 2.0 * batch * k * out;
    return product + batch * positions * positions * (k * groups + out + groups);
  }

  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path path) const override {
    const std::string rule = Rule();
    const int64_t dims = config_.spatial + 2;
    if (a.dim() != dims || delta.dim() != dims || a.size(0) != delta.size(0)) {
      ShapeError(rule, "expected batched input and output with " + std::to_string(dims) + " dimensions");
    }
    std::vector<bool> is_weight;
    bool any_weight = false;
    for (const Slot& slot : slots) {
      is_weight.push_back(slot.arg == 1);
      any_weight = any_weight || slot.arg == 1;
    }
    Unfolded x;
    x.batch = delta.size(0);
    x.groups = config_.groups;
    const int64_t out = delta.size(1);
    if (out % x.groups != 0) ShapeError(rule, "output channels are not divisible by groups");
    x.og = out / x.groups;
    x.d = delta.reshape({x.batch, x.groups, x.og, -1});
    x.positions = x.d.size(3);
    if (any_weight) {
      const at::Tensor input = config_.spatial == 1 ? a.unsqueeze(2) : a;
      const auto two = [&](const std::vector<int64_t>& v, int64_t fill) {
        return config_.spatial == 1 ? std::vector<int64_t>{fill, v[0]} : v;
      };
      std::vector<int64_t> kernel(config_.weight_shape.begin() + 2, config_.weight_shape.end());
      const at::Tensor unfolded = at::im2col(input, two(kernel, 1), two(config_.dilation, 1),
                                             two(config_.padding, 0), two(config_.stride, 1));  // [B, C·k, L]
      if (unfolded.size(2) != x.positions) ShapeError(rule, "unfolded positions do not match the output");
      x.kg = unfolded.size(1) / x.groups;
      x.u = unfolded.view({x.batch, x.groups, x.kg, x.positions});
    }
    return std::make_unique<ConvBatch>(std::move(x), std::move(is_weight), config_.weight_shape,
                                       path == Path::kGhost && any_weight);
  }

 private:
  ConvConfig config_;
};

std::optional<std::vector<int64_t>> Expand(const std::optional<std::vector<int64_t>>& values, int64_t spatial) {
  if (!values) return std::nullopt;
  if (static_cast<int64_t>(values->size()) == spatial) return values;
  if (values->size() == 1) return std::vector<int64_t>(static_cast<size_t>(spatial), (*values)[0]);
  return std::nullopt;
}

}  // namespace

MatchResult MatchConvolution(const OpView& op) {
  const bool traced = op.kind == "aten::_convolution" || op.kind == "aten::convolution";
  const auto& args = op.args;
  if (args.size() < (traced ? 9u : 7u)) return {nullptr, op.kind + " with an unknown signature"};
  ConvConfig config;
  const OpArg& weight = args[1];
  const bool weight_known = weight.kind == OpArg::Kind::kParameter || weight.kind == OpArg::Kind::kState;
  if (weight_known) {
    config.weight_shape = weight.shape;
    config.spatial = static_cast<int64_t>(weight.shape.size()) - 2;
  } else if (op.kind == "aten::conv1d") {
    config.spatial = 1;
  } else if (op.kind == "aten::conv2d") {
    config.spatial = 2;
  } else {
    return {nullptr, op.kind + " with a computed weight"};
  }
  if (config.spatial != 1 && config.spatial != 2) {
    return {nullptr, op.kind + " with " + std::to_string(config.spatial) + " spatial dimensions (only 1-D and 2-D have a rule)"};
  }
  if (traced) {
    const auto transposed = ConstantBool(args[6]);
    if (!transposed || *transposed) return {nullptr, op.kind + " transposed (no rule for transposed convolutions)"};
  }
  const auto stride = Expand(ConstantInts(args[3]), config.spatial);
  const auto dilation = Expand(ConstantInts(args[5]), config.spatial);
  const auto groups = ConstantInt(args[traced ? 8 : 6]);
  if (!stride || !dilation || !groups || *groups < 1) return {nullptr, op.kind + " with non-constant stride, dilation or groups"};
  config.stride = *stride;
  config.dilation = *dilation;
  config.groups = *groups;
  const OpArg& padding = args[4];
  if (padding.kind == OpArg::Kind::kConstant && padding.constant.isString()) {
    const std::string mode = padding.constant.toStringRef();
    config.padding.assign(static_cast<size_t>(config.spatial), 0);
    if (mode == "same") {
      if (!weight_known) return {nullptr, op.kind + " with padding='same' and a computed weight"};
      for (int64_t i = 0; i < config.spatial; ++i) {
        const int64_t total = config.dilation[i] * (config.weight_shape[2 + i] - 1);
        if (total % 2 != 0) return {nullptr, op.kind + " with asymmetric padding='same'"};
        config.padding[i] = total / 2;
      }
    } else if (mode != "valid") {
      return {nullptr, op.kind + " with padding='" + mode + "'"};
    }
  } else {
    const auto pads = Expand(ConstantInts(padding), config.spatial);
    if (!pads) return {nullptr, op.kind + " with non-constant padding"};
    config.padding = *pads;
  }
  auto layer = std::make_unique<ConvLayer>(std::move(config));
  layer->activation_arg = 0;
  if (weight_known) AddSlotIfParameter(*layer, op, 1);
  AddSlotIfParameter(*layer, op, 2);
  if (layer->slots.empty()) return {};
  return {std::move(layer), ""};
}

}  // namespace bastion::core::dp::grad_sample
