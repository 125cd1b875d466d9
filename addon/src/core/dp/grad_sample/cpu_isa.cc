#include "core/dp/grad_sample/cpu_isa.h"

#include <cstdlib>
#include <string>

namespace bastion::core::dp::grad_sample {

Isa MaxIsa() {
  const char* cap = std::getenv("BASTION_MAX_CPU_ISA");
  const std::string limit = cap == nullptr ? "" : cap;
#if defined(__x86_64__)
  static const bool avx512 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4") != 0;
  }();
  static const bool avx2 = __builtin_cpu_supports("x86-64-v3") != 0;
  if (avx512 && limit != "avx2" && limit != "baseline") return Isa::kAvx512;
  if (avx2 && limit != "baseline") return Isa::kAvx2;
#endif
  return Isa::kBaseline;
}

}  // namespace bastion::core::dp::grad_sample
