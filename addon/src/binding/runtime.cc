// version() and setThreads(): libtorch runtime facts and per-thread settings as plain JS values; and
// noiseKeystream(), the noise generator's keystream for tests.
#include "core/runtime.h"
#include "binding/args.h"
#include "binding/exports.h"
#include "core/dp/gaussian.h"
#include "core/error.h"

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

Napi::Value NoiseKeystream(const Napi::CallbackInfo& info) {
  const std::string key = CopyBytes(Argument(info, 0), "key");
  const std::string nonce = CopyBytes(Argument(info, 1), "nonce");
  if (key.size() != 16) Reject("16 bytes", "key", std::to_string(key.size()) + " bytes");
  if (nonce.size() != 16) Reject("16 bytes", "nonce", std::to_string(nonce.size()) + " bytes");
  const int64_t bytes = ReadInteger(Argument(info, 2), "bytes", 0, int64_t{1} << 24);
  if (bytes % 128 != 0) Reject("a multiple of 128", "bytes", std::to_string(bytes));
  std::string out(static_cast<size_t>(bytes), '\0');
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* n = reinterpret_cast<const unsigned char*>(nonce.data());
  if (!core::dp::AegisKeystreamForTest(k, n, reinterpret_cast<unsigned char*>(out.data()), out.size())) {
    return info.Env().Null();
  }
  return OwningBuffer(info.Env(), std::move(out));
}

}  // namespace bastion::binding
