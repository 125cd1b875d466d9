// Registers aten::scaled_dot_product_attention for libtorch < 2.0, which lacks it, so that models
// written by PyTorch 2.x load. The kernel is the math reference of PyTorch 2.x, built from ops that
// have derivatives, so autograd differentiates it (CompositeImplicitAutograd).
#include <torch/version.h>

#if TORCH_VERSION_MAJOR < 2

#include <cmath>
#include <limits>

#include <ATen/core/Tensor.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/logical_not.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

namespace bastion::core {
namespace {

constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();

// A boolean mask keeps the positions that are true; PyTorch turns it into an additive -inf bias.
at::Tensor MaskToBias(const at::Tensor& mask, const at::Tensor& query) {
  if (mask.scalar_type() != at::kBool) return mask;
  return at::zeros_like(mask, query.options()).masked_fill(mask.logical_not(), kMinusInfinity);
}

at::Tensor ScaledDotProductAttention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                                     const c10::optional<at::Tensor>& attn_mask, double dropout_p, bool is_causal,
                                     c10::optional<double> scale, bool enable_gqa) {
  TORCH_CHECK(query.dim() >= 2 && key.dim() >= 2 && value.dim() >= 2,
              "scaled_dot_product_attention: query, key and value need at least 2 dimensions");
  TORCH_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, "scaled_dot_product_attention: dropout_p must be in [0, 1], got ",
              dropout_p);
  const int64_t target_length = query.size(-2);
  const int64_t source_length = key.size(-2);

  at::Tensor k = key;
  at::Tensor v = value;
  if (enable_gqa && query.dim() >= 3 && key.dim() >= 3 && query.size(-3) != key.size(-3)) {
    const int64_t query_heads = query.size(-3);
    const int64_t kv_heads = key.size(-3);
    TORCH_CHECK(kv_heads > 0 && query_heads % kv_heads == 0 && value.size(-3) == kv_heads,
                "scaled_dot_product_attention: query heads (", query_heads, ") must be a multiple of key/value heads (",
                kv_heads, ") with enable_gqa");
    k = k.repeat_interleave(query_heads / kv_heads, -3);
    v = v.repeat_interleave(query_heads / kv_heads, -3);
  }

  c10::optional<at::Tensor> bias;
  if (is_causal) {
    TORCH_CHECK(!attn_mask.has_value(),
                "scaled_dot_product_attention: Explicit attn_mask should not be set when "
                "is_causal=True");
    bias = MaskToBias(at::ones({target_length, source_length}, query.options().dtype(at::kBool)).tril(), query);
  } else if (attn_mask.has_value() && attn_mask->defined()) {
    bias = MaskToBias(*attn_mask, query);
  }

  // Like PyTorch 2.x: scale q and k by sqrt(scale) each, which keeps q·k in range for large scales.
  const double scale_factor = scale.has_value() ? *scale : 1.0 / std::sqrt(static_cast<double>(query.size(-1)));
  const double root = std::sqrt(std::abs(scale_factor));
  at::Tensor logits = at::matmul(query.mul(scale_factor < 0 ? -root : root), k.transpose(-2, -1).mul(root));

  at::Tensor weights;
  if (bias.has_value()) {
    logits = logits.add(*bias);
    // Rows that mask every position give 0 instead of NaN (PyTorch 2.5+ _safe_softmax); filling the
    // logits first keeps NaN out of the backward pass too.
    const at::Tensor fully_masked = logits.eq(kMinusInfinity).all(-1, /*keepdim=*/true);
    weights = at::softmax(logits.masked_fill(fully_masked, 0.0), -1).masked_fill(fully_masked, 0.0);
  } else {
    weights = at::softmax(logits, -1);
  }
  if (dropout_p > 0.0) weights = at::dropout(weights, dropout_p, /*train=*/true);
  return at::matmul(weights, v);
}

}  // namespace
}  // namespace bastion::core

// The exact schema of PyTorch 2.x (native_functions.yaml), so serialized calls with keyword
// arguments (scale=, enable_gqa=) resolve.
TORCH_LIBRARY_FRAGMENT(aten, m) {
  m.def(
      "scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None, "
      "float dropout_p=0.0, bool is_causal=False, *, float? scale=None, bool enable_gqa=False) -> Tensor",
      torch::dispatch(c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(bastion::core::ScaledDotProductAttention)));
}

#endif  // TORCH_VERSION_MAJOR < 2
