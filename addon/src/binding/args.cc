// See args.h.
#include "binding/args.h"

#include <cmath>
#include <memory>
#include <utility>

#include "core/error.h"
#include "core/text.h"

namespace bastion::binding {
namespace {

std::string TypedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
      return "Int8Array";
    case napi_uint8_array:
      return "Uint8Array";
    case napi_uint8_clamped_array:
      return "Uint8ClampedArray";
    case napi_int16_array:
      return "Int16Array";
    case napi_uint16_array:
      return "Uint16Array";
    case napi_int32_array:
      return "Int32Array";
    case napi_uint32_array:
      return "Uint32Array";
    case napi_float32_array:
      return "Float32Array";
    case napi_float64_array:
      return "Float64Array";
    case napi_bigint64_array:
      return "BigInt64Array";
    case napi_biguint64_array:
      return "BigUint64Array";
  }
  return "TypedArray";
}

bool IsPlainObject(const Napi::Value& value) {
  return value.IsObject() && !value.IsArray() && !value.IsFunction() && !value.IsTypedArray();
}

}  // namespace

std::string TypeName(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean:
      return "boolean";
    case napi_number:
      return "number";
    case napi_string:
      return "string";
    case napi_symbol:
      return "symbol";
    case napi_bigint:
      return "bigint";
    case napi_function:
      return "function";
    case napi_external:
      return "external";
    case napi_object:
      break;
  }
  if (value.IsArray()) return "array";
  if (value.IsTypedArray()) return TypedArrayName(value.As<Napi::TypedArray>().TypedArrayType());
  if (value.IsArrayBuffer()) return "ArrayBuffer";
  if (value.IsDataView()) return "DataView";
  return "object";
}

void Reject(const std::string& expected, const std::string& name, const std::string& received) {
  throw core::Error(core::ErrorCode::kInvalidArgument,
                    "Expected " + expected + " for " + name + " but received " + received);
}

Napi::Value Argument(const Napi::CallbackInfo& info, size_t index) {
  return index < info.Length() ? info[index] : info.Env().Undefined();
}

std::string CopyBytes(const Napi::Value& value, const std::string& name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Reject("Buffer or Uint8Array", name, TypeName(value));
  }
  const auto array = value.As<Napi::Uint8Array>();
  if (array.ByteLength() == 0) return {};
  return std::string(reinterpret_cast<const char*>(array.Data()), array.ByteLength());
}

double ReadNumber(const Napi::Value& value, const std::string& name) {
  if (!value.IsNumber()) Reject("number", name, TypeName(value));
  return value.As<Napi::Number>().DoubleValue();
}

int64_t ReadInteger(const Napi::Value& value, const std::string& name, int64_t min, int64_t max) {
  const std::string expected = "integer between " + std::to_string(min) + " and " + std::to_string(max);
  if (!value.IsNumber()) Reject(expected, name, TypeName(value));
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= static_cast<double>(min) && number <= static_cast<double>(max)) || std::trunc(number) != number) {
    Reject(expected, name, core::NumberText(number));
  }
  return static_cast<int64_t>(number);
}

bool ReadBoolean(const Napi::Value& value, const std::string& name) {
  if (!value.IsBoolean()) Reject("boolean", name, TypeName(value));
  return value.As<Napi::Boolean>().Value();
}

std::string ReadString(const Napi::Value& value, const std::string& name) {
  if (!value.IsString()) Reject("string", name, TypeName(value));
  return value.As<Napi::String>().Utf8Value();
}

std::string ReadChoice(const Napi::Value& value, const std::string& name, const std::vector<std::string>& choices) {
  std::string expected;
  for (size_t i = 0; i < choices.size(); ++i) {
    expected += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + ("'" + choices[i] + "'");
  }
  if (!value.IsString()) Reject(expected, name, TypeName(value));
  const std::string text = value.As<Napi::String>().Utf8Value();
  for (const std::string& choice : choices) {
    if (text == choice) return text;
  }
  Reject(expected, name, "'" + text + "'");
}

Napi::Array ReadArray(const Napi::Value& value, const std::string& name) {
  if (!value.IsArray()) Reject("array", name, TypeName(value));
  return value.As<Napi::Array>();
}

ObjectArgument::ObjectArgument(const Napi::Value& value, std::string name) : name_(std::move(name)) {
  if (!IsPlainObject(value)) Reject("object", name_, TypeName(value));
  object_ = value.As<Napi::Object>();
}

std::optional<double> ObjectArgument::OptionalNumber(const char* key) const {
  if (!Has(key)) return std::nullopt;
  return Number(key);
}

View ViewOf(Napi::Env env, const Napi::TypedArray& array) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer = nullptr;
  size_t offset = 0;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, array, &type, &length, &data, &buffer, &offset), View{});
  bool is_array_buffer = false;
  NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(env, buffer, &is_array_buffer), View{});
  return {data, array.ByteLength(), !is_array_buffer};
}

core::dp::HostTensor ReadTensor(const Napi::Value& value, const std::string& name, Napi::TypedArray* view) {
  const ObjectArgument object(value, name);
  core::dp::HostTensor tensor;
  tensor.name = name;
  tensor.dtype = object.String("dtype");
  const Napi::Array shape = object.Array("shape");
  for (uint32_t d = 0; d < shape.Length(); ++d) {
    tensor.shape.push_back(ReadInteger(shape.Get(d), name + ".shape[" + std::to_string(d) + "]", 0, kMaxSafeInteger));
  }
  const Napi::Value data = object.Get("data");
  if (!data.IsTypedArray()) Reject("Buffer or TypedArray", object.NameOf("data"), TypeName(data));
  const Napi::TypedArray array = data.As<Napi::TypedArray>();
  const View bytes = ViewOf(value.Env(), array);
  tensor.byte_length = bytes.byte_length;
  if (view == nullptr || bytes.shared) {
    auto copy = std::make_shared<std::string>(static_cast<const char*>(bytes.data), bytes.byte_length);
    tensor.data = copy->data();
    tensor.owner = std::move(copy);
  } else {
    tensor.data = bytes.data;
    *view = array;
  }
  return tensor;
}

std::vector<core::dp::HostTensor> ReadTensors(const Napi::Value& value, const std::string& name) {
  const Napi::Array array = ReadArray(value, name);
  std::vector<core::dp::HostTensor> tensors;
  for (uint32_t i = 0; i < array.Length(); ++i)
    tensors.push_back(ReadTensor(array.Get(i), name + "." + std::to_string(i)));
  return tensors;
}

core::dp::LossConfig ReadLoss(const Napi::Value& value, const std::string& name) {
  const ObjectArgument object(value, name);
  core::dp::LossConfig loss;
  loss.kind = object.String("kind");
  loss.label_smoothing = object.Number("labelSmoothing", 0.0);
  return loss;
}

Napi::Buffer<char> OwningBuffer(Napi::Env env, std::string&& bytes) {
  if (bytes.empty()) return Napi::Buffer<char>::New(env, 0);
  auto owned = std::make_unique<std::string>(std::move(bytes));
  char* data = owned->data();
  const size_t size = owned->size();
  Napi::Buffer<char> buffer = Napi::Buffer<char>::NewOrCopy(
      env, data, size, [](Napi::Env /*env*/, char* /*data*/, std::string* hint) { delete hint; }, owned.get());
  owned.release();  // the finalizer owns it now (NewOrCopy calls it at once when it copied)
  return buffer;
}

Napi::Array ShapeArray(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array array = Napi::Array::New(env, shape.size());
  for (size_t d = 0; d < shape.size(); ++d) array.Set(d, static_cast<double>(shape[d]));
  return array;
}

Napi::Array ParameterRules(Napi::Env env, const std::vector<core::dp::ParameterRule>& plan) {
  Napi::Array array = Napi::Array::New(env, plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("parameter", plan[i].parameter);
    entry.Set("rule", plan[i].rule);
    entry.Set("reason", plan[i].reason);
    array.Set(i, entry);
  }
  return array;
}

}  // namespace bastion::binding
