// Process facts about libtorch (version, ABI, threads, BLAS) and the thread settings of one OS thread.
#ifndef BASTION_CORE_RUNTIME_H_
#define BASTION_CORE_RUNTIME_H_

#include <optional>
#include <string>

namespace bastion::core {

struct RuntimeInfo {
  std::string torch_version;        // TORCH_VERSION, e.g. "1.13.0"
  bool cxx11_abi = false;           // _GLIBCXX_USE_CXX11_ABI this addon was built with
  int intra_op_threads = 0;         // at::get_num_threads() as seen by the calling thread
  int interop_threads = 0;          // at::get_num_interop_threads()
  std::optional<std::string> blas;  // openblas_get_config(), when OpenBLAS is loaded
  std::string parallel_backend;     // "OpenMP", "native" or "TBB"
};

RuntimeInfo GetRuntimeInfo();

// Sets at::set_num_threads(intra_op_threads) for the calling thread (1..1024, checked by the caller)
// and OpenBLAS's own pool to 1 thread. Never touches the inter-op pool, which is set once per process.
void SetThreads(int intra_op_threads);

// Once per process: makes glibc's malloc keep freed tensor memory instead of handing it back to the
// kernel. By default a freed block of megabytes (a gradient, an activation) is unmapped or trimmed and
// the next step maps it again, paying a page fault per 4 KiB page; on a VM (and inside an enclave,
// where faults are dearer) that tripled the step time of a 640k-weight embedding model. Sets
// M_MMAP_THRESHOLD to 32 MiB (glibc's maximum) and M_TRIM_THRESHOLD to 512 MiB; the process keeps
// up to that much freed memory resident for reuse.
void KeepFreedMemory();

}  // namespace bastion::core

#endif  // BASTION_CORE_RUNTIME_H_
