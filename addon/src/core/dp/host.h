// Plain data the N-API side hands to core::dp (torch-free, so the binding TUs stay quick to compile):
// tensors held by the caller, and the loss, each named as the API names them (src/vocabulary.ts),
// so nothing is renamed on the way in.
#ifndef BASTION_CORE_DP_HOST_H_
#define BASTION_CORE_DP_HOST_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace at {
class Tensor;
}  // namespace at

namespace bastion::core::dp {

// A tensor's bytes held by the caller, only ever read by core.
struct HostTensor {
  std::string name;            // for messages, e.g. "inputs.0"
  std::string dtype;           // safetensors name (core/dtype.h): F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL
  std::vector<int64_t> shape;  // first dimension = samples
  const void* data = nullptr;  // numel(shape) × element size bytes, row-major, little-endian
  size_t byte_length = 0;
  // Keeps data alive when set. When null, the caller guarantees data outlives every use: the
  // trainer for training data, the call for anything else.
  std::shared_ptr<const void> owner;
};

struct HostData {
  std::vector<HostTensor> inputs;  // forward(inputs[0], inputs[1], ...)
  std::optional<HostTensor> labels;
};

// The per-sample loss as the API names it; ParseLoss (grad_engine.h) checks it.
struct LossConfig {
  std::string kind = "cross_entropy";  // cross_entropy | nll | mse | l1 | bce_with_logits
  double label_smoothing = 0;          // cross_entropy only, in [0, 1)
};

// The tensor over host.data, checked against its dtype and shape: without a copy when the bytes are
// aligned to the element size (unaligned vector loads are fine on x86, but ATen's kernels may assume
// alignment), else a copy. Never written through: callers read it only through gathers or clone() into
// fresh tensors, so model code that writes to its inputs cannot write into the caller's memory. Throws
// Error(kInvalidArgument) naming host.name for an unknown dtype or a byte length that does not fit.
at::Tensor WrapHostTensor(const HostTensor& host);

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_HOST_H_
