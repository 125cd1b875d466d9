// aten::linear(input [B, ..., K], weight [O, K], bias [O]): g_i(W) = Σ_t δ_it a_itᵀ, g_i(b) = Σ_t δ_it
// over every leading dimension t besides the batch (the engine moves a batch found elsewhere, as in
// MultiheadAttention's [T, B, E] projections, to the front). Ghost norm (Goodfellow 2015; Li et al. 2022,
// "Large Language Models Can Be Strong Differentially Private Learners", §4): ||g_i(W)||² =
// ||a_i||²·||δ_i||² for one row per sample, else <a_i a_iᵀ, δ_i δ_iᵀ> over the T×T Gram matrices;
// the clipped sum is then one product (δ·c)ᵀ a, as in an ordinary weight gradient.
#include <string>

#include <ATen/ATen.h>

#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {
namespace {

constexpr const char* kRule = "linear";

// a -> [B, T, K], delta -> [B, T, O].
struct Rows {
  at::Tensor a, delta;
  int64_t batch, rows, in, out;
};

Rows Reshape(const at::Tensor& a, const at::Tensor& delta) {
  if (a.dim() < 1 || delta.dim() != a.dim() || a.size(0) != delta.size(0)) {
    ShapeError(kRule, "input and output gradient shapes do not match");
  }
  Rows r;
  r.batch = a.size(0);
  r.in = a.size(-1);
  r.out = delta.size(-1);
  r.a = a.reshape({r.batch, -1, r.in});
  r.delta = delta.reshape({r.batch, -1, r.out});
  r.rows = r.a.size(1);
  if (r.delta.size(1) != r.rows) ShapeError(kRule, "input and output gradient rows differ");
  return r;
}

class LinearBatch final : public LayerBatch {
 public:
  LinearBatch(Rows rows, std::vector<bool> is_weight, bool ghost)
      : r_(std::move(rows)), is_weight_(std::move(is_weight)), ghost_(ghost) {}

  at::Tensor PerSample(size_t slot) override {
    if (is_weight_.at(slot)) return at::bmm(r_.delta.transpose(1, 2), r_.a);  // [B, O, K]
    return r_.delta.sum(1);                                                   // [B, O]
  }

  at::Tensor NormSquared(size_t slot) override {
    if (r_.rows == 1 && (ghost_ || !is_weight_.at(slot))) {
      // One row per sample: ||g_i(b)||² = ||δ_i||² and ||g_i(W)||² = ||a_i||²·||δ_i||², the first shared.
      if (!delta_squares_.defined()) delta_squares_ = RowSquares(r_.delta);
      return is_weight_.at(slot) ? RowSquares(r_.a) * delta_squares_ : delta_squares_;
    }
    if (!ghost_ || !is_weight_.at(slot)) return LayerBatch::NormSquared(slot);
    const at::Tensor gram_a = at::bmm(r_.a, r_.a.transpose(1, 2));              // [B, T, T]
    const at::Tensor gram_delta = at::bmm(r_.delta, r_.delta.transpose(1, 2));  // [B, T, T]
    return (gram_a * gram_delta).sum(at::IntArrayRef{1, 2});
  }

  at::Tensor WeightedSum(size_t slot, const at::Tensor& factors) override {
    if (!is_weight_.at(slot)) {
      // Σ_i c_i g_i(b) with g_i(b) = Σ_t δ_it: one matrix-vector product, over the g_i(b) the norms
      // summed (a sum over T of a [B, T, O] tensor cost as much as the rest of a sequence layer's sums).
      const at::Tensor per_sample = r_.rows == 1 ? r_.delta.reshape({r_.batch, r_.out}) : CachedPerSample(slot);
      return at::mv(per_sample.t(), factors.to(r_.delta.scalar_type()));
    }
    if (!ghost_) return LayerBatch::WeightedSum(slot, factors);
    const at::Tensor scaled = r_.delta * factors.to(r_.delta.scalar_type()).view({r_.batch, 1, 1});  // [B, T, O]
    return at::mm(scaled.reshape({-1, r_.out}).t(), r_.a.reshape({-1, r_.in}));                      // [O, K]
  }

 private:
  // ||x_i||² per sample, in one pass.
  at::Tensor RowSquares(const at::Tensor& x) const {
    return at::linalg_vector_norm(x.reshape({r_.batch, -1}), 2, at::IntArrayRef{1}).square();
  }

  Rows r_;
  std::vector<bool> is_weight_;
  bool ghost_;
  at::Tensor delta_squares_;  // ||δ_i||², once computed
};

class LinearLayer final : public Layer {
 public:
  std::string Rule() const override { return kRule; }
  bool AnyBatchDim() const override { return true; }
  bool HasGhost() const override { return true; }

  double Cost(Path path, const at::Tensor& a, const at::Tensor& delta) const override {
    const double batch = static_cast<double>(a.size(0));
    const double in = static_cast<double>(a.size(-1));
    const double out = static_cast<double>(delta.size(-1));
    const double rows = batch > 0 ? static_cast<double>(a.numel()) / (batch * in) : 0.0;
    // Both paths pay the B·T·K·O product once (per-sample einsum, or the clipped-sum product).
    const double product = batch * rows * in * out;
    if (path == Path::kMaterialize) return product + 2.0 * batch * in * out;  // + norms + weighted sum
    const double norms = rows == 1 ? batch * (in + out) : batch * rows * rows * (in + out + 1.0);
    return product + norms;
  }

  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path path) const override {
    std::vector<bool> is_weight;
    for (const Slot& slot : slots) is_weight.push_back(slot.arg == 1);
    return std::make_unique<LinearBatch>(Reshape(a, delta), std::move(is_weight), path == Path::kGhost);
  }
};

}  // namespace

MatchResult MatchLinear(const OpView& op) {
  auto layer = std::make_unique<LinearLayer>();
  layer->activation_arg = 0;
  AddSlotIfParameter(*layer, op, 1);
  AddSlotIfParameter(*layer, op, 2);
  if (layer->slots.empty()) return {};
  return {std::move(layer), ""};
}

}  // namespace bastion::core::dp::grad_sample
