// Validates and copies arguments out of V8 before any libtorch code runs.
#include "binding/args.h"

#include <charconv>
#include <cmath>
#include <memory>
#include <utility>

#include "core/error.h"

namespace bastion::binding {
namespace {

std::string TypedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
  }
  return "TypedArray";
}

[[noreturn]] void Reject(const std::string& expected, const char* name, const std::string& received) {
  throw core::Error(core::ErrorCode::kInvalidArgument,
                    "Expected " + expected + " for " + name + " but received " + received);
}

Napi::Value Argument(const Napi::CallbackInfo& info, size_t index) {
  return index < info.Length() ? info[index] : info.Env().Undefined();
}

}  // namespace

std::string TypeName(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_bigint: return "bigint";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_object: break;
  }
  if (value.IsArray()) return "array";
  if (value.IsTypedArray()) return TypedArrayName(value.As<Napi::TypedArray>().TypedArrayType());
  if (value.IsArrayBuffer()) return "ArrayBuffer";
  if (value.IsDataView()) return "DataView";
  return "object";
}

// Shortest round-trip text, as JS prints numbers.
std::string NumberText(double number) {
  if (std::isnan(number)) return "NaN";
  if (std::isinf(number)) return number > 0 ? "Infinity" : "-Infinity";
  char text[32];
  const auto result = std::to_chars(text, text + sizeof(text), number);
  return std::string(text, result.ptr);
}

// A Buffer that owns the bytes (no second copy): the string is freed with the Buffer.
Napi::Buffer<char> OwningBuffer(Napi::Env env, std::string&& bytes) {
  if (bytes.empty()) return Napi::Buffer<char>::New(env, 0);
  auto owned = std::make_unique<std::string>(std::move(bytes));
  char* data = owned->data();
  const size_t size = owned->size();
  Napi::Buffer<char> buffer = Napi::Buffer<char>::NewOrCopy(
      env, data, size, [](Napi::Env /*env*/, char* /*data*/, std::string* hint) { delete hint; },
      owned.get());
  owned.release();  // the finalizer owns it now (NewOrCopy calls it at once when it copied)
  return buffer;
}

std::string CopyBytes(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const Napi::Value value = Argument(info, index);
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Reject("Buffer or Uint8Array", name, TypeName(value));
  }
  const auto array = value.As<Napi::Uint8Array>();
  if (array.ByteLength() == 0) return {};
  return std::string(reinterpret_cast<const char*>(array.Data()), array.ByteLength());
}

int32_t ReadInteger(const Napi::CallbackInfo& info, size_t index, const char* name, int32_t min,
                    int32_t max) {
  const Napi::Value value = Argument(info, index);
  const std::string expected =
      "integer between " + std::to_string(min) + " and " + std::to_string(max);
  if (!value.IsNumber()) Reject(expected, name, TypeName(value));
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= min && number <= max) || std::trunc(number) != number) {
    Reject(expected, name, NumberText(number));
  }
  return static_cast<int32_t>(number);
}

}  // namespace bastion::binding
