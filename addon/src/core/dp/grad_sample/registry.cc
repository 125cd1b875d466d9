// The table from node kinds to rules, the defaults every materialised path shares, and the constant
// helpers rules read their node's configuration with.
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include <ATen/ATen.h>

#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {

Matcher FindRule(const std::string& kind) {
  static const std::unordered_map<std::string, Matcher> rules = {
      {"aten::linear", &MatchLinear},           {"aten::conv1d", &MatchConvolution},
      {"aten::conv2d", &MatchConvolution},      {"aten::_convolution", &MatchConvolution},
      {"aten::convolution", &MatchConvolution}, {"aten::embedding", &MatchEmbedding},
      {"aten::layer_norm", &MatchLayerNorm},    {"aten::group_norm", &MatchGroupNorm},
      {"aten::add", &MatchElementwise},         {"aten::sub", &MatchElementwise},
      {"aten::mul", &MatchElementwise},
  };
  const auto it = rules.find(kind);
  return it == rules.end() ? nullptr : it->second;
}

const at::Tensor& LayerBatch::CachedPerSample(size_t slot) {
  if (per_sample_cache_.size() <= slot) per_sample_cache_.resize(slot + 1);
  if (!per_sample_cache_[slot].defined()) per_sample_cache_[slot] = PerSample(slot);
  return per_sample_cache_[slot];
}

at::Tensor LayerBatch::NormSquared(size_t slot) {
  const at::Tensor& g = CachedPerSample(slot);
  return g.reshape({g.size(0), -1}).pow(2).sum(1);
}

at::Tensor LayerBatch::WeightedSum(size_t slot, const at::Tensor& factors) {
  const at::Tensor& g = CachedPerSample(slot);
  const int64_t batch = g.size(0);
  return at::mm(factors.to(g.scalar_type()).view({1, batch}), g.reshape({batch, -1})).view(g.sizes().slice(1));
}

double Layer::Cost(Path path, const at::Tensor& /*a*/, const at::Tensor& /*delta*/) const {
  return path == Path::kMaterialize ? 0.0 : std::numeric_limits<double>::infinity();
}

std::optional<int64_t> ConstantInt(const OpArg& arg) {
  if (arg.kind != OpArg::Kind::kConstant || !arg.constant.isInt()) return std::nullopt;
  return arg.constant.toInt();
}

std::optional<bool> ConstantBool(const OpArg& arg) {
  if (arg.kind != OpArg::Kind::kConstant) return std::nullopt;
  if (arg.constant.isBool()) return arg.constant.toBool();
  if (arg.constant.isInt()) return arg.constant.toInt() != 0;
  return std::nullopt;
}

std::optional<double> ConstantDouble(const OpArg& arg) {
  if (arg.kind != OpArg::Kind::kConstant) return std::nullopt;
  if (arg.constant.isDouble()) return arg.constant.toDouble();
  if (arg.constant.isInt()) return static_cast<double>(arg.constant.toInt());
  return std::nullopt;
}

std::optional<std::vector<int64_t>> ConstantInts(const OpArg& arg) {
  if (arg.kind != OpArg::Kind::kConstant) return std::nullopt;
  if (arg.constant.isIntList()) return arg.constant.toIntVector();
  if (arg.constant.isInt()) return std::vector<int64_t>{arg.constant.toInt()};
  return std::nullopt;
}

bool IsNone(const OpArg& arg) { return arg.kind == OpArg::Kind::kConstant && arg.constant.isNone(); }

void AddSlotIfParameter(Layer& layer, const OpView& op, size_t index) {
  if (index < op.args.size() && op.args[index].kind == OpArg::Kind::kParameter) {
    layer.slots.push_back({index, op.args[index].parameter, op.args[index].shape, op.args[index].row_slice});
  }
}

void ShapeError(const std::string& rule, const std::string& message) {
  throw std::runtime_error(rule + ": " + message);
}

}  // namespace bastion::core::dp::grad_sample
