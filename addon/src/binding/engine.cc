// gradientPlan(), perSampleGradients() and clippedGradientSum(): the per-sample gradient engine for
// analysis and tests. Copies every argument out of V8 into plain structs first, then calls core.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "binding/args.h"
#include "binding/exports.h"
#include "core/dp/engine_api.h"
#include "core/error.h"

namespace bastion::binding {
namespace {

[[noreturn]] void Reject(const std::string& expected, const std::string& name, const std::string& received) {
  throw core::Error(core::ErrorCode::kInvalidArgument, "Expected " + expected + " for " + name + " but received " + received);
}

std::string Kind(const Napi::Value& value) {
  if (value.IsUndefined()) return "undefined";
  if (value.IsNull()) return "null";
  if (value.IsArray()) return "array";
  if (value.IsTypedArray()) return "typed array";
  if (value.IsNumber()) return "number";
  if (value.IsString()) return "string";
  if (value.IsBoolean()) return "boolean";
  return "object";
}

Napi::Value Arg(const Napi::CallbackInfo& info, size_t index) {
  return index < info.Length() ? info[index] : info.Env().Undefined();
}

double ReadNumber(const Napi::Value& value, const std::string& name) {
  if (!value.IsNumber()) Reject("number", name, Kind(value));
  return value.As<Napi::Number>().DoubleValue();
}

int64_t ReadSize(const Napi::Value& value, const std::string& name) {
  const double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (!value.IsNumber() || !(number >= 0 && number <= 9007199254740991.0) || std::trunc(number) != number) {
    Reject("non-negative integer", name, value.IsNumber() ? value.ToString().Utf8Value() : Kind(value));
  }
  return static_cast<int64_t>(number);
}

std::string ReadString(const Napi::Value& value, const std::string& name) {
  if (!value.IsString()) Reject("string", name, Kind(value));
  return value.As<Napi::String>().Utf8Value();
}

core::dp::AnalysisTensor ReadTensor(const Napi::Value& value, const std::string& name) {
  if (!value.IsObject() || value.IsArray()) Reject("{ data, dtype, shape }", name, Kind(value));
  const Napi::Object object = value.As<Napi::Object>();
  core::dp::AnalysisTensor tensor;
  tensor.dtype = ReadString(object.Get("dtype"), name + ".dtype");
  const Napi::Value shape = object.Get("shape");
  if (!shape.IsArray()) Reject("array of integers", name + ".shape", Kind(shape));
  const Napi::Array dims = shape.As<Napi::Array>();
  for (uint32_t d = 0; d < dims.Length(); ++d) {
    tensor.shape.push_back(ReadSize(dims.Get(d), name + ".shape[" + std::to_string(d) + "]"));
  }
  const Napi::Value data = object.Get("data");
  if (!data.IsTypedArray()) Reject("Buffer or TypedArray", name + ".data", Kind(data));
  const Napi::TypedArray array = data.As<Napi::TypedArray>();
  const auto* bytes = static_cast<const char*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  tensor.bytes.assign(bytes, array.ByteLength());
  return tensor;
}

std::vector<core::dp::AnalysisTensor> ReadTensors(const Napi::Value& value, const std::string& name) {
  if (!value.IsArray()) Reject("array of { data, dtype, shape }", name, Kind(value));
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<core::dp::AnalysisTensor> tensors;
  for (uint32_t i = 0; i < array.Length(); ++i) tensors.push_back(ReadTensor(array.Get(i), name + "[" + std::to_string(i) + "]"));
  return tensors;
}

core::dp::HostLoss ReadLoss(const Napi::Value& value) {
  if (!value.IsObject() || value.IsArray()) Reject("{ kind, labelSmoothing? }", "loss", Kind(value));
  const Napi::Object object = value.As<Napi::Object>();
  core::dp::HostLoss loss;
  loss.kind = ReadString(object.Get("kind"), "loss.kind");
  const Napi::Value smoothing = object.Get("labelSmoothing");
  if (!smoothing.IsUndefined()) loss.label_smoothing = ReadNumber(smoothing, "loss.labelSmoothing");
  return loss;
}

core::dp::HostClip ReadClip(const Napi::Value& value) {
  if (!value.IsObject() || value.IsArray()) Reject("{ maxGradNorm, groups?, bounds? }", "clip", Kind(value));
  const Napi::Object object = value.As<Napi::Object>();
  core::dp::HostClip clip;
  clip.max_grad_norm = ReadNumber(object.Get("maxGradNorm"), "clip.maxGradNorm");
  const Napi::Value groups = object.Get("groups");
  if (!groups.IsUndefined()) {
    if (!groups.IsArray()) Reject("array of arrays of parameter indices", "clip.groups", Kind(groups));
    const Napi::Array outer = groups.As<Napi::Array>();
    for (uint32_t g = 0; g < outer.Length(); ++g) {
      const Napi::Value inner = outer.Get(g);
      const std::string name = "clip.groups[" + std::to_string(g) + "]";
      if (!inner.IsArray()) Reject("array of parameter indices", name, Kind(inner));
      std::vector<int64_t> members;
      const Napi::Array list = inner.As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); ++i) members.push_back(ReadSize(list.Get(i), name + "[" + std::to_string(i) + "]"));
      clip.groups.push_back(std::move(members));
    }
  }
  const Napi::Value bounds = object.Get("bounds");
  if (!bounds.IsUndefined()) {
    if (!bounds.IsArray()) Reject("array of numbers", "clip.bounds", Kind(bounds));
    const Napi::Array list = bounds.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) clip.bounds.push_back(ReadNumber(list.Get(i), "clip.bounds[" + std::to_string(i) + "]"));
  }
  return clip;
}

Napi::Array Shape(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array array = Napi::Array::New(env, shape.size());
  for (size_t d = 0; d < shape.size(); ++d) array.Set(d, static_cast<double>(shape[d]));
  return array;
}

Napi::Float32Array Floats(Napi::Env env, const std::vector<float>& data) {
  Napi::Float32Array array = Napi::Float32Array::New(env, data.size());
  if (!data.empty()) std::copy(data.begin(), data.end(), array.Data());
  return array;
}

Napi::Array FloatArrays(Napi::Env env, const std::vector<core::dp::FloatArray>& arrays) {
  Napi::Array result = Napi::Array::New(env, arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    Napi::Object object = Napi::Object::New(env);
    object.Set("name", arrays[i].name);
    object.Set("shape", Shape(env, arrays[i].shape));
    object.Set("data", Floats(env, arrays[i].data));
    result.Set(i, object);
  }
  return result;
}

}  // namespace

Napi::Value GradientPlan(const Napi::CallbackInfo& info) {
  std::string bytes = CopyBytes(info, 0, "bytes");
  const Napi::Value probe = Arg(info, 1);
  const auto inputs = probe.IsUndefined() ? std::vector<core::dp::AnalysisTensor>{} : ReadTensors(probe, "inputs");
  const auto plan = core::dp::GradientPlan(std::move(bytes), inputs);
  const Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("parameter", plan[i].parameter);
    entry.Set("rule", plan[i].rule);
    entry.Set("reason", plan[i].reason);
    result.Set(i, entry);
  }
  return result;
}

Napi::Value PerSampleGradients(const Napi::CallbackInfo& info) {
  std::string bytes = CopyBytes(info, 0, "bytes");
  const auto inputs = ReadTensors(Arg(info, 1), "inputs");
  const auto labels = ReadTensor(Arg(info, 2), "labels");
  const auto loss = ReadLoss(Arg(info, 3));
  const std::string method = ReadString(Arg(info, 4), "method");
  if (method != "engine" && method != "loop") Reject("'engine' or 'loop'", "method", method);
  const auto grads = core::dp::PerSampleGradients(std::move(bytes), inputs, labels, loss, method == "loop");
  return FloatArrays(info.Env(), grads);
}

Napi::Value ClippedGradientSum(const Napi::CallbackInfo& info) {
  std::string bytes = CopyBytes(info, 0, "bytes");
  const auto inputs = ReadTensors(Arg(info, 1), "inputs");
  const auto labels = ReadTensor(Arg(info, 2), "labels");
  const auto loss = ReadLoss(Arg(info, 3));
  const auto clip = ReadClip(Arg(info, 4));
  const Napi::Value path_value = Arg(info, 5);
  const std::string path = path_value.IsUndefined() ? "auto" : ReadString(path_value, "path");
  const auto sum = core::dp::ClippedGradientSum(std::move(bytes), inputs, labels, loss, clip, path);
  const Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("grads", FloatArrays(env, sum.grads));
  result.Set("perSampleNorms", Floats(env, sum.per_sample_norms));
  result.Set("losses", Floats(env, sum.losses));
  return result;
}

}  // namespace bastion::binding
