// See host.h.
#include "core/dp/host.h"

#include <cstring>

#include <ATen/ATen.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/text.h"

namespace bastion::core::dp {

at::Tensor WrapHostTensor(const HostTensor& host) {
  const auto dtype = ParseDtype(host.dtype);
  if (!dtype) Refuse("Tensor '" + host.name + "' has dtype " + host.dtype + "; expected one of " + DtypeNames());
  const auto item = static_cast<int64_t>(c10::elementSize(*dtype));
  int64_t numel = 1;
  for (int64_t size : host.shape) {
    if (size < 0 || __builtin_mul_overflow(numel, size, &numel)) {
      Refuse("Tensor '" + host.name + "' has an invalid shape " + ShapeText(host.shape));
    }
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(numel, item, &bytes) || static_cast<uint64_t>(bytes) != host.byte_length) {
    Refuse("Tensor '" + host.name + "' of dtype " + host.dtype + " and shape " + ShapeText(host.shape) + " needs " +
           std::to_string(numel) + " × " + std::to_string(item) + " bytes but has " + std::to_string(host.byte_length));
  }
  const auto options = at::TensorOptions().dtype(*dtype).device(at::kCPU);
  if (numel == 0) return at::empty(host.shape, options);
  if (reinterpret_cast<uintptr_t>(host.data) % static_cast<uintptr_t>(item) != 0) {
    at::Tensor copy = at::empty(host.shape, options);
    std::memcpy(copy.data_ptr(), host.data, host.byte_length);
    return copy;
  }
  // from_blob never writes; every use of these tensors reads them (index_select, narrow + clone).
  void* data = const_cast<void*>(host.data);
  std::shared_ptr<const void> owner = host.owner;
  return at::from_blob(
      data, host.shape, [owner](void* /*data*/) mutable { owner.reset(); }, options);
}

}  // namespace bastion::core::dp
