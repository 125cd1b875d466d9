// Argument conversion for the exports: copies JS values into plain C++ values, or throws
// core::Error(kInvalidArgument) with one message shape:
// "Expected <what> for <name> but received <type, or the value when only the value is wrong>".
#ifndef BASTION_BINDING_ARGS_H_
#define BASTION_BINDING_ARGS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include <napi.h>

namespace bastion::binding {

// How messages name a JS value's type: "undefined", "number", "array", "Float32Array", "object", ...
std::string TypeName(const Napi::Value& value);

// Shortest round-trip text of a number, as JS prints it ("NaN", "Infinity", "0.1").
std::string NumberText(double number);

// A Buffer that takes ownership of the bytes without copying them.
Napi::Buffer<char> OwningBuffer(Napi::Env env, std::string&& bytes);

// A copy of the bytes of a Buffer or Uint8Array argument.
std::string CopyBytes(const Napi::CallbackInfo& info, size_t index, const char* name);

// An integer argument in [min, max].
int32_t ReadInteger(const Napi::CallbackInfo& info, size_t index, const char* name, int32_t min,
                    int32_t max);

}  // namespace bastion::binding

#endif  // BASTION_BINDING_ARGS_H_
