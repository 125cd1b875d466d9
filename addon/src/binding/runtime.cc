// version() and setThreads(): libtorch runtime facts and per-thread settings as plain JS values.
#include "core/runtime.h"
#include "binding/args.h"
#include "binding/exports.h"

namespace bastion::binding {

Napi::Value Version(const Napi::CallbackInfo& info) {
  const core::RuntimeInfo runtime = core::GetRuntimeInfo();
  const Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("torch", runtime.torch_version);
  result.Set("cxx11Abi", runtime.cxx11_abi);
  result.Set("intraOpThreads", runtime.intra_op_threads);
  result.Set("interopThreads", runtime.interop_threads);
  result.Set("blas", runtime.blas ? Napi::Value(Napi::String::New(env, *runtime.blas)) : env.Null());
  result.Set("parallelBackend", runtime.parallel_backend);
  return result;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  core::SetThreads(static_cast<int>(ReadInteger(Argument(info, 0), "intraOpThreads", 1, 1024)));
  return info.Env().Undefined();
}

}  // namespace bastion::binding
