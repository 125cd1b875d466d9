// The Trainer class: converts JS arguments into core::dp structs, keeps the training tensors' JS
// buffers alive for the trainer's lifetime, and returns plain objects and Buffers that own their
// bytes. Training tensors are borrowed without a copy (core reads them only through gathers into
// fresh tensors) unless they live in a SharedArrayBuffer, which another thread may write while a
// step reads it: those are copied. A borrowed buffer that was detached or resized (transferred to
// another thread, a resizable ArrayBuffer shrunk) is refused at the next call, before C++ reads it.
#include "binding/trainer.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "binding/args.h"
#include "binding/guard.h"
#include "core/dp/trainer.h"
#include "core/error.h"

namespace bastion::binding {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

[[noreturn]] void Expected(const std::string& expected, const std::string& name, const Napi::Value& value) {
  const std::string received = value.IsNumber() ? NumberText(value.As<Napi::Number>().DoubleValue()) : TypeName(value);
  throw core::Error(core::ErrorCode::kInvalidArgument, "Expected " + expected + " for " + name + " but received " + received);
}

bool IsPlainObject(const Napi::Value& value) { return value.IsObject() && !value.IsArray() && !value.IsFunction() && !value.IsTypedArray(); }

Napi::Object AsObject(const Napi::Value& value, const std::string& name) {
  if (!IsPlainObject(value)) Expected("object", name, value);
  return value.As<Napi::Object>();
}

double NumberAt(const Napi::Object& object, const char* key, const std::string& path, std::optional<double> fallback = std::nullopt) {
  const Napi::Value value = object.Get(key);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsNumber()) Expected("number", path + key, value);
  return value.As<Napi::Number>().DoubleValue();
}

std::optional<double> OptionalNumberAt(const Napi::Object& object, const char* key, const std::string& path) {
  if (object.Get(key).IsUndefined()) return std::nullopt;
  return NumberAt(object, key, path);
}

int64_t IntegerAt(const Napi::Object& object, const char* key, const std::string& path, double min, std::optional<double> fallback = std::nullopt) {
  const Napi::Value value = object.Get(key);
  if (value.IsUndefined() && fallback) return static_cast<int64_t>(*fallback);
  const std::string expected = "integer between " + NumberText(min) + " and 9007199254740991";
  if (!value.IsNumber()) Expected(expected, path + key, value);
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= min && number <= kMaxSafeInteger) || std::trunc(number) != number) Expected(expected, path + key, value);
  return static_cast<int64_t>(number);
}

bool BooleanAt(const Napi::Object& object, const char* key, const std::string& path, bool fallback) {
  const Napi::Value value = object.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean()) Expected("boolean", path + key, value);
  return value.As<Napi::Boolean>().Value();
}

std::string StringAt(const Napi::Object& object, const char* key, const std::string& path) {
  const Napi::Value value = object.Get(key);
  if (!value.IsString()) Expected("string", path + key, value);
  return value.As<Napi::String>().Utf8Value();
}

Napi::Array ArrayAt(const Napi::Object& object, const char* key, const std::string& path) {
  const Napi::Value value = object.Get(key);
  if (!value.IsArray()) Expected("array", path + key, value);
  return value.As<Napi::Array>();
}

struct ViewInfo {
  const void* data = nullptr;
  size_t byte_length = 0;
  bool shared = false;  // backed by a SharedArrayBuffer
};

ViewInfo Describe(Napi::Env env, const Napi::TypedArray& array) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer = nullptr;
  size_t offset = 0;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, array, &type, &length, &data, &buffer, &offset), ViewInfo{});
  bool is_array_buffer = false;
  NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(env, buffer, &is_array_buffer), ViewInfo{});
  return {data, array.ByteLength(), !is_array_buffer};
}

}  // namespace

Napi::Function Trainer::Define(Napi::Env env) {
  return DefineClass(env, "Trainer",
                     {
                         InstanceMethod<&Trainer::Step>("step", napi_enumerable),
                         InstanceMethod<&Trainer::Evaluate>("evaluate", napi_enumerable),
                         InstanceMethod<&Trainer::Predict>("predict", napi_enumerable),
                         InstanceMethod<&Trainer::State>("state", napi_enumerable),
                         InstanceMethod<&Trainer::Restore>("restore", napi_enumerable),
                         InstanceMethod<&Trainer::ExportModel>("exportModel", napi_enumerable),
                         InstanceMethod<&Trainer::Info>("info", napi_enumerable),
                     });
}

Trainer::Trainer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Trainer>(info) {
  Guarded(info.Env(), [&] {
    std::string model = CopyBytes(info, 0, "model");
    const Napi::Object data = AsObject(info.Length() > 1 ? info[1] : info.Env().Undefined(), "data");
    const Napi::Object config = AsObject(info.Length() > 2 ? info[2] : info.Env().Undefined(), "config");
    core::dp::HostData host = ReadData(data, "data.", /*keep=*/true, /*need_labels=*/true);
    const core::dp::TrainerConfig parsed = ReadConfig(config);
    trainer_ = core::dp::Trainer::Create(std::move(model), std::move(host), parsed);
    reports_clipped_loss_ = parsed.loss_bound > 0;
    return 0;
  });
}

Trainer::~Trainer() = default;

core::dp::HostTensor Trainer::ReadTensor(const Napi::Value& value, const std::string& name, bool keep) {
  const Napi::Object object = AsObject(value, name);
  core::dp::HostTensor tensor;
  tensor.name = name;
  tensor.dtype = StringAt(object, "dtype", name + ".");
  const Napi::Array shape = ArrayAt(object, "shape", name + ".");
  for (uint32_t d = 0; d < shape.Length(); ++d) {
    const Napi::Value size = shape.Get(d);
    const std::string where = name + ".shape[" + std::to_string(d) + "]";
    if (!size.IsNumber()) Expected("integer between 0 and 9007199254740991", where, size);
    const double number = size.As<Napi::Number>().DoubleValue();
    if (!(number >= 0 && number <= kMaxSafeInteger) || std::trunc(number) != number) {
      Expected("integer between 0 and 9007199254740991", where, size);
    }
    tensor.shape.push_back(static_cast<int64_t>(number));
  }
  const Napi::Value data = object.Get("data");
  if (!data.IsTypedArray()) Expected("Buffer or TypedArray", name + ".data", data);
  const Napi::TypedArray array = data.As<Napi::TypedArray>();
  const ViewInfo view = Describe(Env(), array);
  tensor.byte_length = view.byte_length;
  if (view.shared) {
    auto copy = std::make_shared<std::string>(static_cast<const char*>(view.data), view.byte_length);
    tensor.data = copy->data();
    tensor.owner = std::move(copy);
  } else {
    tensor.data = view.data;
    if (keep) borrowed_.push_back({name, Napi::Persistent(array), view.data, view.byte_length});
  }
  return tensor;
}

core::dp::HostData Trainer::ReadData(const Napi::Object& data, const std::string& path, bool keep, bool need_labels) {
  core::dp::HostData host;
  const Napi::Array inputs = ArrayAt(data, "inputs", path);
  for (uint32_t k = 0; k < inputs.Length(); ++k) {
    host.inputs.push_back(ReadTensor(inputs.Get(k), "inputs." + std::to_string(k), keep));
  }
  const Napi::Value labels = data.Get("labels");
  if (!labels.IsUndefined() || need_labels) host.labels = ReadTensor(labels, "labels", keep);
  return host;
}

core::dp::TrainerConfig Trainer::ReadConfig(const Napi::Object& config) {
  core::dp::TrainerConfig out;
  const std::string mode = StringAt(config, "mode", "config.");
  if (mode != "private" && mode != "non-private") {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "Expected 'private' or 'non-private' for config.mode but received '" + mode + "'");
  }
  out.is_private = mode == "private";

  const Napi::Object loss = AsObject(config.Get("loss"), "config.loss");
  out.loss = StringAt(loss, "kind", "config.loss.");
  out.label_smoothing = NumberAt(loss, "labelSmoothing", "config.loss.", 0.0);

  const Napi::Object optimizer = AsObject(config.Get("optimizer"), "config.optimizer");
  const std::string prefix = "config.optimizer.";
  out.optimizer.kind = StringAt(optimizer, "kind", prefix);
  out.optimizer.lr = NumberAt(optimizer, "lr", prefix);
  out.optimizer.weight_decay = OptionalNumberAt(optimizer, "weightDecay", prefix);
  if (out.optimizer.kind == "sgd") {
    out.optimizer.momentum = NumberAt(optimizer, "momentum", prefix, 0.0);
    out.optimizer.dampening = NumberAt(optimizer, "dampening", prefix, 0.0);
    out.optimizer.nesterov = BooleanAt(optimizer, "nesterov", prefix, false);
  } else {
    const Napi::Value betas = optimizer.Get("betas");
    if (!betas.IsUndefined()) {
      if (!betas.IsArray() || betas.As<Napi::Array>().Length() != 2) Expected("array of 2 numbers", prefix + "betas", betas);
      const Napi::Array pair = betas.As<Napi::Array>();
      for (uint32_t i = 0; i < 2; ++i) {
        const Napi::Value beta = pair.Get(i);
        if (!beta.IsNumber()) Expected("number", prefix + "betas[" + std::to_string(i) + "]", beta);
        (i == 0 ? out.optimizer.beta1 : out.optimizer.beta2) = beta.As<Napi::Number>().DoubleValue();
      }
    }
    out.optimizer.eps = NumberAt(optimizer, "eps", prefix, 1e-8);
  }

  out.max_physical_batch_size = IntegerAt(config, "maxPhysicalBatchSize", "config.", 1, 0.0);
  out.fail_fast = BooleanAt(config, "failFast", "config.", false);
  if (const std::optional<double> bound = OptionalNumberAt(config, "lossBound", "config.")) {
    if (!(*bound > 0)) Expected("number > 0", "config.lossBound", config.Get("lossBound"));
    out.loss_bound = *bound;
  }
  if (out.is_private) {
    out.sample_rate = NumberAt(config, "sampleRate", "config.");
    out.noise_multiplier = NumberAt(config, "noiseMultiplier", "config.");
    const bool has_flat = !config.Get("maxGradNorm").IsUndefined();
    const bool has_per_layer = !config.Get("perLayer").IsUndefined();
    if (has_flat == has_per_layer) {
      throw core::Error(core::ErrorCode::kInvalidArgument,
                        "Expected exactly one of config.maxGradNorm (flat clipping) and config.perLayer (per-layer "
                        "clipping) for a private trainer but received " +
                            std::string(has_flat ? "both" : "neither"));
    }
    if (has_flat) {
      out.max_grad_norm = NumberAt(config, "maxGradNorm", "config.");
    } else {
      const Napi::Array groups = ArrayAt(config, "perLayer", "config.");
      for (uint32_t k = 0; k < groups.Length(); ++k) {
        const std::string where = "config.perLayer[" + std::to_string(k) + "]";
        const Napi::Object group = AsObject(groups.Get(k), where);
        core::dp::LayerBound bound;
        bound.max_grad_norm = NumberAt(group, "maxGradNorm", where + ".");
        const Napi::Array names = ArrayAt(group, "parameters", where + ".");
        for (uint32_t i = 0; i < names.Length(); ++i) {
          const Napi::Value name = names.Get(i);
          if (!name.IsString()) Expected("string", where + ".parameters[" + std::to_string(i) + "]", name);
          bound.parameters.push_back(name.As<Napi::String>().Utf8Value());
        }
        out.per_layer.push_back(std::move(bound));
      }
      if (out.per_layer.empty()) {
        throw core::Error(core::ErrorCode::kInvalidArgument, "Expected a non-empty array for config.perLayer but received an empty one");
      }
    }
  } else {
    out.batch_size = IntegerAt(config, "batchSize", "config.", 1);
  }
  return out;
}

void Trainer::CheckBorrowed() {
  for (const Borrowed& entry : borrowed_) {
    const ViewInfo view = Describe(Env(), entry.array.Value());
    if (view.data != entry.data || view.byte_length != entry.byte_length) {
      throw core::Error(core::ErrorCode::kInvalidArgument,
                        "The buffer of training tensor '" + entry.name +
                            "' was detached or resized after the trainer was created (transferred to another thread, "
                            "or a resizable ArrayBuffer changed); create a new trainer from fresh buffers");
    }
  }
}

Napi::Value Trainer::Step(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    CheckBorrowed();
    const core::dp::StepResult step = trainer_->Step();
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("step", static_cast<double>(step.step));
    result.Set("samples", static_cast<double>(step.samples));
    // Dataset indices of the dropped samples, by reason (private training; empty arrays otherwise).
    const auto indices = [&](const std::vector<int64_t>& values) {
      Napi::Array array = Napi::Array::New(info.Env(), values.size());
      for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), static_cast<double>(values[i]));
      return array;
    };
    Napi::Object dropped = Napi::Object::New(info.Env());
    dropped.Set("exception", indices(step.dropped.exception));
    dropped.Set("nonFiniteLoss", indices(step.dropped.non_finite_loss));
    dropped.Set("nonFiniteGradient", indices(step.dropped.non_finite_gradient));
    result.Set("dropped", dropped);
    result.Set("lossSum", step.loss_sum);
    if (reports_clipped_loss_) result.Set("clippedLossSum", step.clipped_loss_sum);
    result.Set("durationMs", step.duration_ms);
    return result;
  });
}

Napi::Value Trainer::Evaluate(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    CheckBorrowed();
    core::dp::Evaluation evaluation;
    if (info.Length() == 0 || info[0].IsUndefined()) {
      evaluation = trainer_->Evaluate(nullptr);
    } else {
      const core::dp::HostData data = ReadData(AsObject(info[0], "data"), "data.", /*keep=*/false, /*need_labels=*/true);
      evaluation = trainer_->Evaluate(&data);
    }
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("samples", static_cast<double>(evaluation.samples));
    result.Set("meanLoss", evaluation.mean_loss);
    result.Set("accuracy", evaluation.accuracy ? Napi::Value(Napi::Number::New(info.Env(), *evaluation.accuracy)) : info.Env().Null());
    result.Set("failed", static_cast<double>(evaluation.failed));
    return result;
  });
}

Napi::Value Trainer::Predict(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    const Napi::Value value = info.Length() > 0 ? info[0] : info.Env().Undefined();
    if (!value.IsArray()) Expected("array of tensors", "inputs", value);
    const Napi::Array inputs = value.As<Napi::Array>();
    std::vector<core::dp::HostTensor> tensors;
    for (uint32_t k = 0; k < inputs.Length(); ++k) {
      tensors.push_back(ReadTensor(inputs.Get(k), "inputs." + std::to_string(k), /*keep=*/false));
    }
    core::dp::OutputTensor output = trainer_->Predict(tensors);
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("dtype", output.dtype);
    Napi::Array shape = Napi::Array::New(info.Env(), output.shape.size());
    for (size_t d = 0; d < output.shape.size(); ++d) shape.Set(d, static_cast<double>(output.shape[d]));
    result.Set("shape", shape);
    result.Set("data", OwningBuffer(info.Env(), std::move(output.bytes)));
    return result;
  });
}

Napi::Value Trainer::State(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value { return OwningBuffer(info.Env(), trainer_->State()); });
}

Napi::Value Trainer::Restore(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    trainer_->Restore(CopyBytes(info, 0, "state"));
    return info.Env().Undefined();
  });
}

Napi::Value Trainer::ExportModel(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value { return OwningBuffer(info.Env(), trainer_->ExportModel()); });
}

Napi::Value Trainer::Info(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    const Napi::Env env = info.Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("steps", static_cast<double>(trainer_->steps()));
    result.Set("samples", static_cast<double>(trainer_->dataset_size()));
    const auto& names = trainer_->trainable_parameters();
    Napi::Array array = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); ++i) array.Set(i, names[i]);
    result.Set("trainableParameters", array);
    return result;
  });
}

}  // namespace bastion::binding
