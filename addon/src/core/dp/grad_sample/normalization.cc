// aten::layer_norm and aten::group_norm: g_i(γ) = Σ x̂_i·δ_i and g_i(β) = Σ δ_i over every position of
// sample i (positions before the normalised shape for LayerNorm, the spatial positions of each
// channel for GroupNorm). x̂ and its statistics come from the forward's own kernels on the input, in
// its dtype, so they are the numbers the forward (and the one-sample reference's backward) used.
// Per-sample gradients are [B, C]-sized, so they are always materialised.
//   LayerNorm: x̂ = native_layer_norm(x) without affine, then δ·x̂ summed over the rows of each sample.
//   GroupNorm: g_i(γ)_c = (Σ_s δ·x − mean·Σ_s δ)·rstd and g_i(β)_c = Σ_s δ, mean and rstd those of
//   the channel's group in sample i. float32: one pass over x and δ (the kernel below) takes Σx, Σx²,
//   Σδx and Σδ per sample and channel in float64, where every product of two floats is exact and the
//   difference loses nothing to cancellation; the moments follow from the sums. Other dtypes: the
//   forward's moments, then the layer's own backward with the batch folded into the channels and
//   groups (N = 1, B·C channels, B·G groups), whose weight and bias gradients per channel of [1, B·C]
//   are g_i(γ), g_i(β).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/dp/grad_sample/cpu_isa.h"
#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {
namespace {

// --- The GroupNorm kernel --------------------------------------------------------------------------

typedef float Floats8 __attribute__((vector_size(8 * sizeof(float))));
typedef double Doubles8 __attribute__((vector_size(8 * sizeof(double))));

// sums[r] = (Σx, Σx², Σδx, Σδ) over the `positions` values of rows [begin, end) of x and δ.
__attribute__((always_inline)) inline void RowSums(const float* x, const float* d, int64_t positions, double* sums,
                                                   int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * positions;
    const float* dr = d + r * positions;
    Doubles8 sx{}, sxx{}, sdx{}, sd{};
    int64_t s = 0;
    for (; s + 8 <= positions; s += 8) {
      Floats8 xf, df;
      std::memcpy(&xf, xr + s, sizeof(xf));
      std::memcpy(&df, dr + s, sizeof(df));
      const Doubles8 xv = __builtin_convertvector(xf, Doubles8);
      const Doubles8 dv = __builtin_convertvector(df, Doubles8);
      sx += xv;
      sxx += xv * xv;
      sdx += dv * xv;
      sd += dv;
    }
    double out[4] = {0, 0, 0, 0};
    for (int i = 0; i < 8; ++i) {
      out[0] += sx[i];
      out[1] += sxx[i];
      out[2] += sdx[i];
      out[3] += sd[i];
    }
    for (; s < positions; ++s) {
      const double xv = xr[s], dv = dr[s];
      out[0] += xv;
      out[1] += xv * xv;
      out[2] += dv * xv;
      out[3] += dv;
    }
    std::memcpy(sums + 4 * r, out, sizeof(out));
  }
}

using RowSumsFn = void (*)(const float*, const float*, int64_t, double*, int64_t, int64_t);
void RowSumsBaseline(const float* x, const float* d, int64_t positions, double* sums, int64_t begin, int64_t end) {
  RowSums(x, d, positions, sums, begin, end);
}
#if defined(__x86_64__)
__attribute__((target("arch=x86-64-v3"))) void RowSumsAvx2(const float* x, const float* d, int64_t positions,
                                                           double* sums, int64_t begin, int64_t end) {
  RowSums(x, d, positions, sums, begin, end);
}
__attribute__((target("arch=x86-64-v4"))) void RowSumsAvx512(const float* x, const float* d, int64_t positions,
                                                             double* sums, int64_t begin, int64_t end) {
  RowSums(x, d, positions, sums, begin, end);
}
#endif

RowSumsFn PickRowSums() {
#if defined(__x86_64__)
  switch (MaxIsa()) {
    case Isa::kAvx512:
      return RowSumsAvx512;
    case Isa::kAvx2:
      return RowSumsAvx2;
    default:
      break;
  }
#endif
  return RowSumsBaseline;
}

// g_i(γ) and g_i(β), [B, C] float32 each, of a float32 GroupNorm with input x and output gradient d,
// both contiguous [B, C, S].
std::pair<at::Tensor, at::Tensor> GroupNormGrads(const at::Tensor& x, const at::Tensor& d, int64_t groups, double eps) {
  const int64_t batch = x.size(0), channels = x.size(1);
  const int64_t positions = batch * channels == 0 ? 0 : x.numel() / (batch * channels);
  const int64_t rows = batch * channels;
  std::vector<double> sums(static_cast<size_t>(4 * rows));
  const RowSumsFn row_sums = PickRowSums();
  const float* xp = x.data_ptr<float>();
  const float* dp = d.data_ptr<float>();
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(positions, 1)),
                   [&](int64_t begin, int64_t end) { row_sums(xp, dp, positions, sums.data(), begin, end); });
  at::Tensor gamma = at::empty({batch, channels}, x.options());
  at::Tensor beta = at::empty({batch, channels}, x.options());
  float* gp = gamma.data_ptr<float>();
  float* bp = beta.data_ptr<float>();
  const int64_t per_group = channels / groups;
  const double count = static_cast<double>(per_group * positions);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t first = b * channels + g * per_group;
      double sx = 0, sxx = 0;
      for (int64_t c = first; c < first + per_group; ++c) {
        sx += sums[4 * c];
        sxx += sums[4 * c + 1];
      }
      const double mean = sx / count;
      const double rstd = 1.0 / std::sqrt(std::max(sxx / count - mean * mean, 0.0) + eps);
      for (int64_t c = first; c < first + per_group; ++c) {
        gp[c] = static_cast<float>((sums[4 * c + 2] - mean * sums[4 * c + 3]) * rstd);
        bp[c] = static_cast<float>(sums[4 * c + 3]);
      }
    }
  }
  return {gamma, beta};
}

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
    if (x.scalar_type() == at::kFloat && delta.scalar_type() == at::kFloat) {
      const auto [gamma, beta] = GroupNormGrads(x, delta.contiguous(), groups_, eps_);
      std::vector<at::Tensor> per_sample;
      for (const Slot& slot : slots) per_sample.push_back(slot.arg == 2 ? gamma : beta);
      return std::make_unique<MaterializedBatch>(std::move(per_sample));
    }
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
