// The one error guard every export runs under: C++ exceptions become JS Errors with a stable string
// `code` and the first line of the message, never a C++ backtrace.
#ifndef BASTION_BINDING_GUARD_H_
#define BASTION_BINDING_GUARD_H_

#include <napi.h>

namespace bastion::binding {

using Handler = Napi::Value (*)(const Napi::CallbackInfo& info);

// Runs handler(info); rethrows any exception as a JS Error with `code` set to INVALID_ARGUMENT,
// MODEL_LOAD_FAILED, TORCH_ERROR, OUT_OF_MEMORY or NATIVE_ERROR.
Napi::Value Guard(const Napi::CallbackInfo& info, Handler handler);

}  // namespace bastion::binding

#endif  // BASTION_BINDING_GUARD_H_
