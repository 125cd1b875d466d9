// inspectModel() and extractTensors(): copy the archive out of V8, call core, return plain JS
// objects (and Buffers that own their bytes).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "binding/args.h"
#include "binding/exports.h"
#include "core/model.h"

namespace bastion::binding {
namespace {

Napi::Array Strings(Napi::Env env, const std::vector<std::string>& values) {
  Napi::Array array = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) array.Set(i, values[i]);
  return array;
}

Napi::Array Tensors(Napi::Env env, const std::vector<core::TensorInfo>& tensors, bool with_requires_grad) {
  Napi::Array array = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const core::TensorInfo& tensor = tensors[i];
    Napi::Object object = Napi::Object::New(env);
    object.Set("name", tensor.name);
    object.Set("shape", ShapeArray(env, tensor.shape));
    object.Set("dtype", tensor.dtype);
    if (with_requires_grad) {
      object.Set("requiresGrad", tensor.requires_grad);
      object.Set("contiguous", tensor.contiguous);
    }
    array.Set(i, object);
  }
  return array;
}

Napi::Array Operators(Napi::Env env, const std::vector<core::OperatorUse>& operators) {
  Napi::Array array = Napi::Array::New(env, operators.size());
  for (size_t i = 0; i < operators.size(); ++i) {
    const core::OperatorUse& use = operators[i];
    Napi::Object op = Napi::Object::New(env);
    op.Set("kind", use.kind);
    op.Set("count", static_cast<double>(use.count));
    op.Set("unconditional", static_cast<double>(use.unconditional));
    op.Set("inTraining", static_cast<double>(use.in_training));
    op.Set("locations", Strings(env, use.locations));
    array.Set(i, op);
  }
  return array;
}

Napi::Array Mutations(Napi::Env env, const std::vector<core::StateMutation>& mutations) {
  Napi::Array array = Napi::Array::New(env, mutations.size());
  for (size_t i = 0; i < mutations.size(); ++i) {
    Napi::Object mutation = Napi::Object::New(env);
    mutation.Set("kind", mutations[i].kind);
    mutation.Set("attribute", mutations[i].attribute);
    mutation.Set("location", mutations[i].location);
    array.Set(i, mutation);
  }
  return array;
}

Napi::Value Forward(Napi::Env env, const std::optional<core::ForwardInfo>& forward) {
  if (!forward) return env.Null();
  Napi::Object constants = Napi::Object::New(env);
  constants.Set("count", static_cast<double>(forward->tensor_constants));
  constants.Set("elements", static_cast<double>(forward->tensor_constant_elements));
  Napi::Object result = Napi::Object::New(env);
  result.Set("operators", Operators(env, forward->operators));
  result.Set("inputs", static_cast<double>(forward->inputs));
  result.Set("mutations", Mutations(env, forward->mutations));
  result.Set("tensorConstants", constants);
  result.Set("batchNormTraining", forward->batch_norm_training);
  result.Set("graph", forward->graph_json);
  return result;
}

}  // namespace

Napi::Value InspectModel(const Napi::CallbackInfo& info) {
  const core::ModelInfo model = core::InspectModel(CopyBytes(Argument(info, 0), "bytes"));
  const Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("methods", Strings(env, model.methods));
  result.Set("parameters", Tensors(env, model.parameters, /*with_requires_grad=*/true));
  result.Set("buffers", Tensors(env, model.buffers, /*with_requires_grad=*/false));
  result.Set("forward", Forward(env, model.forward));
  result.Set("training", model.training);
  return result;
}

Napi::Value ExtractTensors(const Napi::CallbackInfo& info) {
  std::string bytes = CopyBytes(Argument(info, 0), "bytes");
  const int64_t max_bytes = ReadInteger(Argument(info, 1), "maxBytes", 0, kMaxSafeInteger);
  std::vector<core::TensorData> tensors = core::ExtractTensors(std::move(bytes), max_bytes);
  const Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    core::TensorData& tensor = tensors[i];
    Napi::Object object = Napi::Object::New(env);
    object.Set("name", tensor.name);
    object.Set("dtype", tensor.dtype);
    object.Set("shape", ShapeArray(env, tensor.shape));
    object.Set("data", OwningBuffer(env, std::move(tensor.bytes)));
    result.Set(i, object);
  }
  return result;
}

}  // namespace bastion::binding
