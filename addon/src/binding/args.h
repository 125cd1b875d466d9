// The one family of argument readers the exports use (binding/engine.cc, model.cc, runtime.cc,
// trainer.cc): each copies a JS value out of V8 into a plain C++ value (a tensor's bytes are
// described, not copied) before any libtorch code runs, or throws core::Error(kInvalidArgument) with
// one message shape:
//   "Expected <what> for <name> but received <the value's type, or the value when only the value is wrong>"
// where <name> is the value's path in the call: "maxBytes", "config.optimizer.momentum", "inputs.0.shape[1]".
// Also the two ways results go back: Buffers that own their bytes, and shapes as arrays.
#ifndef BASTION_BINDING_ARGS_H_
#define BASTION_BINDING_ARGS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <napi.h>

#include "core/dp/host.h"
#include "core/dp/parameter_rule.h"

namespace bastion::binding {

// Number.MAX_SAFE_INTEGER: JS numbers are exact integers up to here.
constexpr int64_t kMaxSafeInteger = 9007199254740991;

// How messages name a JS value's type: "undefined", "number", "array", "Float32Array", "object", ...
std::string TypeName(const Napi::Value& value);

// Throws the message above.
[[noreturn]] void Reject(const std::string& expected, const std::string& name, const std::string& received);

// The argument at index, or undefined past the last one.
Napi::Value Argument(const Napi::CallbackInfo& info, size_t index);

// A copy of the bytes of a Buffer or Uint8Array.
std::string CopyBytes(const Napi::Value& value, const std::string& name);
// Any number, NaN and infinities included (core checks ranges, listing every problem at once).
double ReadNumber(const Napi::Value& value, const std::string& name);
// An integer in [min, max] (max ≤ kMaxSafeInteger).
int64_t ReadInteger(const Napi::Value& value, const std::string& name, int64_t min, int64_t max);
bool ReadBoolean(const Napi::Value& value, const std::string& name);
std::string ReadString(const Napi::Value& value, const std::string& name);
// One of `choices`: "Expected 'engine' or 'loop' for method but received 'fast'".
std::string ReadChoice(const Napi::Value& value, const std::string& name, const std::vector<std::string>& choices);
Napi::Array ReadArray(const Napi::Value& value, const std::string& name);

// A plain object (not an array, function or typed array) whose properties are read with the readers
// above, each named "<name>.<key>". An undefined property is absent: the readers with a fallback
// return it, the others reject.
class ObjectArgument {
 public:
  ObjectArgument(const Napi::Value& value, std::string name);

  std::string NameOf(const char* key) const { return name_ + "." + key; }
  Napi::Value Get(const char* key) const { return object_.Get(key); }
  bool Has(const char* key) const { return !Get(key).IsUndefined(); }

  double Number(const char* key) const { return ReadNumber(Get(key), NameOf(key)); }
  double Number(const char* key, double fallback) const { return Has(key) ? Number(key) : fallback; }
  std::optional<double> OptionalNumber(const char* key) const;
  int64_t Integer(const char* key, int64_t min, int64_t max) const {
    return ReadInteger(Get(key), NameOf(key), min, max);
  }
  bool Boolean(const char* key, bool fallback) const {
    return Has(key) ? ReadBoolean(Get(key), NameOf(key)) : fallback;
  }
  std::string String(const char* key) const { return ReadString(Get(key), NameOf(key)); }
  std::string Choice(const char* key, const std::vector<std::string>& choices) const {
    return ReadChoice(Get(key), NameOf(key), choices);
  }
  Napi::Array Array(const char* key) const { return ReadArray(Get(key), NameOf(key)); }
  ObjectArgument Object(const char* key) const { return ObjectArgument(Get(key), NameOf(key)); }

 private:
  Napi::Object object_;
  std::string name_;
};

// Where a typed array's bytes are; `shared` when a SharedArrayBuffer backs them.
struct View {
  const void* data = nullptr;
  size_t byte_length = 0;
  bool shared = false;
};
View ViewOf(Napi::Env env, const Napi::TypedArray& array);

// A tensor { dtype, shape, data: Buffer | TypedArray } named `name` ("inputs.0", "labels"), its bytes
// copied (`owner` holds the copy). With `view`, the bytes are borrowed instead: data points into the
// JS view, which *view receives, and the caller must keep the view alive for every use of the tensor
// and check, after reading its other arguments (whose getters run JS) and before core reads the
// bytes, that ViewOf still finds them where data points. A SharedArrayBuffer's bytes are always
// copied (another thread may write them while core reads them); *view is then left unset.
core::dp::HostTensor ReadTensor(const Napi::Value& value, const std::string& name, Napi::TypedArray* view = nullptr);
// An array of tensors, named "<name>.0", "<name>.1", ...
std::vector<core::dp::HostTensor> ReadTensors(const Napi::Value& value, const std::string& name);
// { kind, labelSmoothing? }, names as the API's (core checks them).
core::dp::LossConfig ReadLoss(const Napi::Value& value, const std::string& name);

// A Buffer that takes ownership of the bytes without copying them.
Napi::Buffer<char> OwningBuffer(Napi::Env env, std::string&& bytes);
Napi::Array ShapeArray(Napi::Env env, const std::vector<int64_t>& shape);
// [{ parameter, rule, reason }]: the engine's plan as gradientPlan() and Trainer.info() return it.
Napi::Array ParameterRules(Napi::Env env, const std::vector<core::dp::ParameterRule>& plan);

}  // namespace bastion::binding

#endif  // BASTION_BINDING_ARGS_H_
