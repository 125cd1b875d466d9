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
#include "core/text.h"

namespace bastion::binding {

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
    std::string model = CopyBytes(Argument(info, 0), "model");
    core::dp::HostData host = ReadData(Argument(info, 1), borrowed_);
    const core::dp::TrainerConfig parsed = ReadConfig(Argument(info, 2));
    CheckBorrowed(borrowed_);  // the config's getters ran JS after the data was read
    trainer_ = core::dp::Trainer::Create(std::move(model), std::move(host), parsed);
    reports_clipped_loss_ = parsed.loss_bound > 0;
    return 0;
  });
}

Trainer::~Trainer() = default;

core::dp::HostTensor Trainer::ReadTensor(const Napi::Value& value, const std::string& name,
                                         std::vector<Borrowed>& borrowed) {
  Napi::TypedArray view;
  core::dp::HostTensor tensor = binding::ReadTensor(value, name, &view);
  if (!tensor.owner) borrowed.push_back({name, Napi::Persistent(view), tensor.data, tensor.byte_length});
  return tensor;
}

core::dp::HostData Trainer::ReadData(const Napi::Value& value, std::vector<Borrowed>& borrowed) {
  const ObjectArgument data(value, "data");
  core::dp::HostData host;
  const Napi::Array inputs = data.Array("inputs");
  for (uint32_t k = 0; k < inputs.Length(); ++k) {
    host.inputs.push_back(ReadTensor(inputs.Get(k), "inputs." + std::to_string(k), borrowed));
  }
  host.labels = ReadTensor(data.Get("labels"), "labels", borrowed);
  return host;
}

core::dp::TrainerConfig Trainer::ReadConfig(const Napi::Value& value) {
  const ObjectArgument config(value, "config");
  core::dp::TrainerConfig out;
  out.is_private = config.Choice("mode", {"private", "non-private"}) == "private";
  out.loss = ReadLoss(config.Get("loss"), config.NameOf("loss"));

  // As the API states it (src/schemas/trainings.ts); core checks the values.
  const ObjectArgument optimizer = config.Object("optimizer");
  out.optimizer.type = optimizer.String("type");
  out.optimizer.learning_rate = optimizer.Number("learningRate");
  out.optimizer.weight_decay = optimizer.OptionalNumber("weightDecay");
  if (out.optimizer.type == "sgd") {
    out.optimizer.momentum = optimizer.Number("momentum", 0.0);
    out.optimizer.dampening = optimizer.Number("dampening", 0.0);
    out.optimizer.nesterov = optimizer.Boolean("nesterov", false);
  } else {
    if (optimizer.Has("betas")) {
      const Napi::Value betas = optimizer.Get("betas");
      if (!betas.IsArray() || betas.As<Napi::Array>().Length() != 2) {
        Reject("array of 2 numbers", optimizer.NameOf("betas"), TypeName(betas));
      }
      const Napi::Array pair = betas.As<Napi::Array>();
      out.optimizer.beta1 = ReadNumber(pair.Get(0u), optimizer.NameOf("betas") + "[0]");
      out.optimizer.beta2 = ReadNumber(pair.Get(1u), optimizer.NameOf("betas") + "[1]");
    }
    out.optimizer.eps = optimizer.Number("eps", 1e-8);
  }

  out.max_physical_batch_size =
      config.Has("maxPhysicalBatchSize") ? config.Integer("maxPhysicalBatchSize", 1, kMaxSafeInteger) : 0;
  out.fail_fast = config.Boolean("failFast", false);
  if (const std::optional<double> bound = config.OptionalNumber("lossBound")) {
    if (!(*bound > 0)) Reject("number > 0", config.NameOf("lossBound"), core::NumberText(*bound));
    out.loss_bound = *bound;
  }
  if (out.is_private) {
    out.sample_rate = config.Number("sampleRate");
    out.noise_multiplier = config.Number("noiseMultiplier");
    const bool has_flat = config.Has("maxGradNorm");
    if (has_flat == config.Has("perLayer")) {
      core::Refuse(
          "Expected exactly one of config.maxGradNorm (flat clipping) and config.perLayer (per-layer clipping) for a "
          "private trainer but received " +
          std::string(has_flat ? "both" : "neither"));
    }
    if (has_flat) {
      out.max_grad_norm = config.Number("maxGradNorm");
    } else {
      const Napi::Array groups = config.Array("perLayer");
      for (uint32_t k = 0; k < groups.Length(); ++k) {
        const ObjectArgument group(groups.Get(k), config.NameOf("perLayer") + "[" + std::to_string(k) + "]");
        core::dp::LayerBound bound;
        bound.max_grad_norm = group.Number("maxGradNorm");
        const Napi::Array names = group.Array("parameters");
        for (uint32_t i = 0; i < names.Length(); ++i) {
          bound.parameters.push_back(
              ReadString(names.Get(i), group.NameOf("parameters") + "[" + std::to_string(i) + "]"));
        }
        out.per_layer.push_back(std::move(bound));
      }
      if (out.per_layer.empty()) Reject("a non-empty array", config.NameOf("perLayer"), "an empty one");
    }
  } else {
    out.batch_size = config.Integer("batchSize", 1, kMaxSafeInteger);
  }
  return out;
}

void Trainer::CheckBorrowed(const std::vector<Borrowed>& borrowed) {
  const bool training = &borrowed == &borrowed_;  // the training data, or the data of one call
  for (const Borrowed& entry : borrowed) {
    const View view = ViewOf(Env(), entry.array.Value());
    if (view.data != entry.data || view.byte_length != entry.byte_length) {
      core::Refuse("The buffer of " + std::string(training ? "training " : "") + "tensor '" + entry.name +
                   "' was detached or resized " +
                   (training ? "after it was handed to the trainer" : "while the call read its arguments") +
                   " (transferred to another thread, or a resizable ArrayBuffer changed)" +
                   (training ? "; create a new trainer from fresh buffers" : ""));
    }
  }
}

Napi::Value Trainer::Step(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    CheckBorrowed(borrowed_);
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
    core::dp::Evaluation evaluation;
    if (Argument(info, 0).IsUndefined()) {
      CheckBorrowed(borrowed_);
      evaluation = trainer_->Evaluate(nullptr);
    } else {
      std::vector<Borrowed> borrowed;
      const core::dp::HostData data = ReadData(info[0], borrowed);
      CheckBorrowed(borrowed);
      evaluation = trainer_->Evaluate(&data);
    }
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("samples", static_cast<double>(evaluation.samples));
    result.Set("meanLoss", evaluation.mean_loss);
    result.Set("accuracy", evaluation.accuracy ? Napi::Value(Napi::Number::New(info.Env(), *evaluation.accuracy))
                                               : info.Env().Null());
    result.Set("failed", static_cast<double>(evaluation.failed));
    return result;
  });
}

Napi::Value Trainer::Predict(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    const Napi::Array inputs = ReadArray(Argument(info, 0), "inputs");
    std::vector<Borrowed> borrowed;
    std::vector<core::dp::HostTensor> tensors;
    for (uint32_t k = 0; k < inputs.Length(); ++k) {
      tensors.push_back(ReadTensor(inputs.Get(k), "inputs." + std::to_string(k), borrowed));
    }
    CheckBorrowed(borrowed);
    core::dp::OutputTensor output = trainer_->Predict(tensors);
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("dtype", output.dtype);
    result.Set("shape", ShapeArray(info.Env(), output.shape));
    result.Set("data", OwningBuffer(info.Env(), std::move(output.bytes)));
    return result;
  });
}

Napi::Value Trainer::State(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value { return OwningBuffer(info.Env(), trainer_->State()); });
}

Napi::Value Trainer::Restore(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    trainer_->Restore(CopyBytes(Argument(info, 0), "state"));
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
    result.Set("gradients", ParameterRules(env, trainer_->gradient_plan()));
    return result;
  });
}

}  // namespace bastion::binding
