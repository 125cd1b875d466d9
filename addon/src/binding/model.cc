// inspectModel(): copies the archive out of V8, inspects it in core, returns plain JS objects.
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

Napi::Array Tensors(Napi::Env env, const std::vector<core::TensorInfo>& tensors,
                    bool with_requires_grad) {
  Napi::Array array = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const core::TensorInfo& tensor = tensors[i];
    Napi::Array shape = Napi::Array::New(env, tensor.shape.size());
    for (size_t d = 0; d < tensor.shape.size(); ++d) {
      shape.Set(d, static_cast<double>(tensor.shape[d]));
    }
    Napi::Object object = Napi::Object::New(env);
    object.Set("name", tensor.name);
    object.Set("shape", shape);
    object.Set("dtype", tensor.dtype);
    if (with_requires_grad) object.Set("requiresGrad", tensor.requires_grad);
    array.Set(i, object);
  }
  return array;
}

Napi::Value Forward(Napi::Env env, const std::optional<core::ForwardInfo>& forward) {
  if (!forward) return env.Null();
  Napi::Array operators = Napi::Array::New(env, forward->operators.size());
  for (size_t i = 0; i < forward->operators.size(); ++i) {
    Napi::Object op = Napi::Object::New(env);
    op.Set("kind", forward->operators[i].kind);
    op.Set("count", static_cast<double>(forward->operators[i].count));
    operators.Set(i, op);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("operators", operators);
  result.Set("inputs", static_cast<double>(forward->inputs));
  return result;
}

}  // namespace

Napi::Value InspectModel(const Napi::CallbackInfo& info) {
  const core::ModelInfo model = core::InspectModel(CopyBytes(info, 0, "bytes"));
  const Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("methods", Strings(env, model.methods));
  result.Set("parameters", Tensors(env, model.parameters, /*with_requires_grad=*/true));
  result.Set("buffers", Tensors(env, model.buffers, /*with_requires_grad=*/false));
  result.Set("forward", Forward(env, model.forward));
  result.Set("training", model.training);
  return result;
}

}  // namespace bastion::binding
