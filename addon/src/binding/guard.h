// The one error guard every export runs under: C++ exceptions become JS Errors with a stable string
// `code` and the first line of the message, never a C++ backtrace.
#ifndef BASTION_BINDING_GUARD_H_
#define BASTION_BINDING_GUARD_H_

#include <exception>

#include <napi.h>

namespace bastion::binding {

using Handler = Napi::Value (*)(const Napi::CallbackInfo& info);

// Runs handler(info); rethrows any exception as a JS Error with `code` set to INVALID_ARGUMENT,
// MODEL_LOAD_FAILED, NON_FINITE, TORCH_ERROR, OUT_OF_MEMORY or NATIVE_ERROR.
Napi::Value Guard(const Napi::CallbackInfo& info, Handler handler);

// Throws the JS Error Guard would throw for this C++ exception.
[[noreturn]] void ThrowAsJsError(Napi::Env env, const std::exception_ptr& error);

// Guard for code that is not a plain export (ObjectWrap constructors and instance methods):
// returns body(), or throws what Guard would.
template <typename Body>
decltype(auto) Guarded(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;  // already a JS exception
  } catch (...) {
    ThrowAsJsError(env, std::current_exception());
  }
}

}  // namespace bastion::binding

#endif  // BASTION_BINDING_GUARD_H_
