// Reads and sets libtorch's runtime settings; OpenBLAS is reached through dlsym so that the addon
// neither links it nor fails when another BLAS is installed.
#include "core/runtime.h"

#include <dlfcn.h>
#include <malloc.h>

#include <mutex>

#include <ATen/Config.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

namespace bastion::core {
namespace {

template <typename Fn>
Fn FindSymbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

const char* ParallelBackend() {
#if AT_PARALLEL_OPENMP
  return "OpenMP";
#elif AT_PARALLEL_NATIVE_TBB
  return "TBB";
#else
  return "native";
#endif
}

}  // namespace

RuntimeInfo GetRuntimeInfo() {
  RuntimeInfo info;
  info.torch_version = TORCH_VERSION;
  info.cxx11_abi = _GLIBCXX_USE_CXX11_ABI != 0;
  info.intra_op_threads = at::get_num_threads();
  info.interop_threads = at::get_num_interop_threads();
  if (auto get_config = FindSymbol<const char* (*)()>("openblas_get_config")) {
    if (const char* config = get_config()) info.blas = config;
  }
  info.parallel_backend = ParallelBackend();
  return info;
}

void SetThreads(int intra_op_threads) {
  at::set_num_threads(intra_op_threads);
  // OpenBLAS threads on top of ATen's would oversubscribe the cores (measured 2x slower).
  if (auto set_threads = FindSymbol<void (*)(int)>("openblas_set_num_threads")) {
    set_threads(1);
  }
}

void KeepFreedMemory() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Fixed values also switch off glibc's dynamic threshold, which otherwise re-arms mmap for any
    // block larger than the largest one freed so far.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
  });
}

}  // namespace bastion::core
