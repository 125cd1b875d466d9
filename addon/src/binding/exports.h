// The exported functions, each called through Guard (module.cc registers them).
#ifndef BASTION_BINDING_EXPORTS_H_
#define BASTION_BINDING_EXPORTS_H_

#include <napi.h>

namespace bastion::binding {

// version() -> { torch, cxx11Abi, intraOpThreads, interopThreads, blas, parallelBackend }
Napi::Value Version(const Napi::CallbackInfo& info);

// setThreads(intraOpThreads: integer 1..1024) -> undefined
Napi::Value SetThreads(const Napi::CallbackInfo& info);

// inspectModel(bytes: Buffer | Uint8Array) -> { methods, parameters, buffers, forward, training }
Napi::Value InspectModel(const Napi::CallbackInfo& info);

// extractTensors(bytes: Buffer | Uint8Array, maxBytes: integer 0..2^53-1)
//   -> [{ name, dtype, shape, data: Buffer }]
Napi::Value ExtractTensors(const Napi::CallbackInfo& info);

}  // namespace bastion::binding

#endif  // BASTION_BINDING_EXPORTS_H_
