// gradientPlan(), perSampleGradients() and clippedGradientSum(): the per-sample gradient engine for
// analysis and tests. Copies every argument out of V8 into plain structs first, then calls core.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "binding/args.h"
#include "binding/exports.h"
#include "core/dp/engine_api.h"

namespace bastion::binding {
namespace {

core::dp::HostClip ReadClip(const Napi::Value& value) {
  const ObjectArgument object(value, "clip");
  core::dp::HostClip clip;
  clip.max_grad_norm = object.Number("maxGradNorm");
  if (object.Has("groups")) {
    const Napi::Array outer = object.Array("groups");
    for (uint32_t g = 0; g < outer.Length(); ++g) {
      const std::string name = object.NameOf("groups") + "[" + std::to_string(g) + "]";
      const Napi::Array list = ReadArray(outer.Get(g), name);
      std::vector<int64_t> members;
      for (uint32_t i = 0; i < list.Length(); ++i) {
        members.push_back(ReadInteger(list.Get(i), name + "[" + std::to_string(i) + "]", 0, kMaxSafeInteger));
      }
      clip.groups.push_back(std::move(members));
    }
  }
  if (object.Has("bounds")) {
    const Napi::Array list = object.Array("bounds");
    for (uint32_t i = 0; i < list.Length(); ++i) {
      clip.bounds.push_back(ReadNumber(list.Get(i), object.NameOf("bounds") + "[" + std::to_string(i) + "]"));
    }
  }
  return clip;
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
    object.Set("shape", ShapeArray(env, arrays[i].shape));
    object.Set("data", Floats(env, arrays[i].data));
    result.Set(i, object);
  }
  return result;
}

}  // namespace

Napi::Value GradientPlan(const Napi::CallbackInfo& info) {
  std::string bytes = CopyBytes(Argument(info, 0), "bytes");
  const Napi::Value probe = Argument(info, 1);
  const auto inputs = probe.IsUndefined() ? std::vector<core::dp::HostTensor>{} : ReadTensors(probe, "inputs");
  return ParameterRules(info.Env(), core::dp::GradientPlan(std::move(bytes), inputs));
}

Napi::Value PerSampleGradients(const Napi::CallbackInfo& info) {
  std::string bytes = CopyBytes(Argument(info, 0), "bytes");
  const auto inputs = ReadTensors(Argument(info, 1), "inputs");
  const auto labels = ReadTensor(Argument(info, 2), "labels");
  const auto loss = ReadLoss(Argument(info, 3), "loss");
  const std::string method = ReadChoice(Argument(info, 4), "method", {"engine", "loop"});
  const auto grads = core::dp::PerSampleGradients(std::move(bytes), inputs, labels, loss, method == "loop");
  return FloatArrays(info.Env(), grads);
}

Napi::Value ClippedGradientSum(const Napi::CallbackInfo& info) {
  std::string bytes = CopyBytes(Argument(info, 0), "bytes");
  const auto inputs = ReadTensors(Argument(info, 1), "inputs");
  const auto labels = ReadTensor(Argument(info, 2), "labels");
  const auto loss = ReadLoss(Argument(info, 3), "loss");
  const auto clip = ReadClip(Argument(info, 4));
  const Napi::Value path = Argument(info, 5);
  const std::string clip_path = path.IsUndefined() ? "auto" : ReadString(path, "path");
  const Napi::Value padding = Argument(info, 6);
  const int64_t rows = padding.IsUndefined() ? 0 : ReadInteger(padding, "padding", 0, kMaxSafeInteger);
  const auto sum = core::dp::ClippedGradientSum(std::move(bytes), inputs, labels, loss, clip, clip_path, rows);
  const Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("grads", FloatArrays(env, sum.grads));
  result.Set("perSampleNorms", Floats(env, sum.per_sample_norms));
  result.Set("losses", Floats(env, sum.losses));
  return result;
}

}  // namespace bastion::binding
