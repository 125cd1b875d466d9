// aten::embedding(weight [V, D], indices [B, ...], padding_idx, scale_grad_by_freq, sparse):
// g_i(W)[v] = Σ_{t: x_it = v} δ_it, with the padding_idx row always zero. The sparse path never
// builds [B, V, D]: ||g_i||² sums, over the distinct tokens of sample i, the squared norm of their
// summed gradients (one unique over sample·V + token, two index_adds), and the clipped sum is one
// index_add of c_i δ_it into [V, D].
#include <string>

#include <ATen/ATen.h>

#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {
namespace {

constexpr const char* kRule = "embedding";

class EmbeddingBatch final : public LayerBatch {
 public:
  EmbeddingBatch(const at::Tensor& indices, const at::Tensor& delta, int64_t vocabulary, int64_t padding_idx)
      : batch_(indices.size(0)), vocabulary_(vocabulary) {
    dim_ = delta.size(-1);
    tokens_ = indices.reshape({batch_, -1}).to(at::kLong);
    rows_ = delta.reshape({batch_, -1, dim_});
    if (rows_.size(1) != tokens_.size(1)) ShapeError(kRule, "indices and output gradient do not match");
    if (padding_idx >= 0) {
      rows_ = rows_ * tokens_.ne(padding_idx).unsqueeze(2).to(rows_.scalar_type());
    }
  }

  at::Tensor PerSample(size_t /*slot*/) override {
    const at::Tensor keys = (tokens_ + at::arange(batch_, tokens_.options()).unsqueeze(1) * vocabulary_).reshape({-1});
    at::Tensor g = at::zeros({batch_ * vocabulary_, dim_}, rows_.options());
    g.index_add_(0, keys, rows_.reshape({-1, dim_}));
    return g.view({batch_, vocabulary_, dim_});
  }

  at::Tensor NormSquared(size_t /*slot*/) override {
    const at::Tensor keys = (tokens_ + at::arange(batch_, tokens_.options()).unsqueeze(1) * vocabulary_).reshape({-1});
    const auto [unique, inverse, counts] = at::_unique2(keys, /*sorted=*/true, /*return_inverse=*/true);
    at::Tensor sums = at::zeros({unique.size(0), dim_}, rows_.options());
    sums.index_add_(0, inverse.reshape({-1}), rows_.reshape({-1, dim_}));
    const at::Tensor sample = at::div(unique, vocabulary_, "floor");
    return at::zeros({batch_}, rows_.options()).index_add_(0, sample, sums.pow(2).sum(1));
  }

  at::Tensor WeightedSum(size_t /*slot*/, const at::Tensor& factors) override {
    const at::Tensor scaled = rows_ * factors.to(rows_.scalar_type()).view({batch_, 1, 1});
    at::Tensor sum = at::zeros({vocabulary_, dim_}, rows_.options());
    return sum.index_add_(0, tokens_.reshape({-1}), scaled.reshape({-1, dim_}));
  }

 private:
  int64_t batch_, vocabulary_, dim_ = 0;
  at::Tensor tokens_;  // [B, T] int64
  at::Tensor rows_;    // [B, T, D], zero at padding_idx
};

class EmbeddingLayer final : public Layer {
 public:
  EmbeddingLayer(int64_t vocabulary, int64_t padding_idx) : vocabulary_(vocabulary), padding_idx_(padding_idx) {}

  std::string Rule() const override { return kRule; }
  bool HasGhost() const override { return true; }

  double Cost(Path path, const at::Tensor& a, const at::Tensor& delta) const override {
    const double batch = static_cast<double>(a.size(0));
    const double dim = static_cast<double>(delta.size(-1));
    if (path == Path::kMaterialize) return 3.0 * batch * static_cast<double>(vocabulary_) * dim;
    return 4.0 * static_cast<double>(delta.numel()) + 8.0 * static_cast<double>(a.numel());  // index_adds + unique
  }

  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path /*path*/) const override {
    if (a.dim() < 1 || delta.dim() != a.dim() + 1 || a.size(0) != delta.size(0)) {
      ShapeError(kRule, "expected batched indices and an output gradient with one more dimension");
    }
    // Both paths give the same numbers from the same rows; the path only picks which methods run.
    return std::make_unique<EmbeddingBatch>(a, delta, vocabulary_, padding_idx_);
  }

 private:
  int64_t vocabulary_, padding_idx_;
};

}  // namespace

MatchResult MatchEmbedding(const OpView& op) {
  if (op.args.size() < 4 || op.args[0].kind != OpArg::Kind::kParameter) return {};
  if (op.args[0].shape.size() != 2) return {nullptr, "aten::embedding with a weight that is not 2-D"};
  const auto padding_idx = ConstantInt(op.args[2]);
  const auto scale = ConstantBool(op.args[3]);
  if (!padding_idx) return {nullptr, "aten::embedding with a non-constant padding_idx"};
  if (!scale || *scale) return {nullptr, "aten::embedding with scale_grad_by_freq"};
  auto layer = std::make_unique<EmbeddingLayer>(op.args[0].shape[0], *padding_idx);
  layer->activation_arg = 1;
  AddSlotIfParameter(*layer, op, 0);
  return {std::move(layer), ""};
}

}  // namespace bastion::core::dp::grad_sample
