// The instruction sets the addon's own kernels (conv_kernel.cc, normalization.cc) have variants for:
// each is built for all of them (GCC target attributes) and runs the widest this CPU has.
#pragma once

namespace bastion::core::dp::grad_sample {

enum class Isa { kBaseline, kAvx2, kAvx512 };  // x86-64 (SSE2), x86-64-v3, x86-64-v4

// The widest set this CPU runs, capped by BASTION_MAX_CPU_ISA (avx512, avx2 or baseline; read on every
// call, so that tests can run each variant on one machine).
Isa MaxIsa();

}  // namespace bastion::core::dp::grad_sample
