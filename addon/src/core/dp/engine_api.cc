// See engine_api.h: converts bytes to tensors (copies, checked against their shapes), runs the
// engine, copies float32 results out.
#include "core/dp/engine_api.h"

#include <cstring>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "core/dp/grad_sample/fallback.h"
#include "core/dp/graph_engine.h"
#include "core/error.h"
#include "core/model.h"

namespace bastion::core::dp {
namespace {

[[noreturn]] void Refuse(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, message); }

at::ScalarType DtypeOf(const std::string& name, const std::string& what) {
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  if (name == "int64") return at::kLong;
  if (name == "int32") return at::kInt;
  if (name == "int16") return at::kShort;
  if (name == "int8") return at::kChar;
  if (name == "uint8") return at::kByte;
  if (name == "bool") return at::kBool;
  Refuse("Expected one of float32, float64, int64, int32, int16, int8, uint8, bool for " + what + ".dtype but received " + name);
}

at::Tensor ToTensor(const AnalysisTensor& host, const std::string& what) {
  const at::ScalarType dtype = DtypeOf(host.dtype, what);
  int64_t numel = 1;
  for (int64_t d : host.shape) {
    if (d < 0) Refuse("Expected non-negative sizes for " + what + ".shape");
    numel *= d;
  }
  const auto item = static_cast<int64_t>(c10::elementSize(dtype));
  if (static_cast<int64_t>(host.bytes.size()) != numel * item) {
    Refuse("Expected " + std::to_string(numel * item) + " bytes for " + what + ".data (shape and dtype) but received " +
           std::to_string(host.bytes.size()));
  }
  at::Tensor tensor = at::empty(host.shape, at::TensorOptions().dtype(dtype));
  if (!host.bytes.empty()) std::memcpy(tensor.data_ptr(), host.bytes.data(), host.bytes.size());
  return tensor;
}

std::vector<at::Tensor> ToTensors(const std::vector<AnalysisTensor>& hosts) {
  std::vector<at::Tensor> tensors;
  for (size_t i = 0; i < hosts.size(); ++i) tensors.push_back(ToTensor(hosts[i], "inputs[" + std::to_string(i) + "]"));
  return tensors;
}

FloatArray ToFloats(const std::string& name, const at::Tensor& tensor) {
  FloatArray out;
  out.name = name;
  out.shape = tensor.sizes().vec();
  const at::Tensor dense = tensor.detach().to(at::kFloat).contiguous();
  out.data.resize(static_cast<size_t>(dense.numel()));
  if (dense.numel() > 0) std::memcpy(out.data.data(), dense.data_ptr<float>(), out.data.size() * sizeof(float));
  return out;
}

LossSpec ToLoss(const HostLoss& host) {
  LossSpec loss;
  if (host.kind == "cross_entropy") loss.kind = LossSpec::Kind::kCrossEntropy;
  else if (host.kind == "nll") loss.kind = LossSpec::Kind::kNll;
  else if (host.kind == "mse") loss.kind = LossSpec::Kind::kMse;
  else if (host.kind == "l1") loss.kind = LossSpec::Kind::kL1;
  else if (host.kind == "bce_with_logits") loss.kind = LossSpec::Kind::kBceWithLogits;
  else Refuse("Expected one of cross_entropy, nll, mse, l1, bce_with_logits for loss.kind but received " + host.kind);
  loss.label_smoothing = host.label_smoothing;
  return loss;
}

Batch ToBatch(const std::vector<AnalysisTensor>& inputs, const AnalysisTensor& labels) {
  Batch batch;
  batch.inputs = ToTensors(inputs);
  batch.labels = ToTensor(labels, "labels");
  return batch;
}

}  // namespace

std::vector<PlanEntry> GradientPlan(std::string model, const std::vector<AnalysisTensor>& probe_inputs) {
  torch::jit::Module module = LoadModule(std::move(model));
  auto engine = MakeGraphGradEngine(module);
  if (!probe_inputs.empty()) engine->Probe(ToTensors(probe_inputs));
  std::vector<PlanEntry> plan;
  for (const ParameterRule& rule : engine->Plan()) plan.push_back({rule.parameter, rule.rule, rule.reason});
  return plan;
}

std::vector<FloatArray> PerSampleGradients(std::string model, const std::vector<AnalysisTensor>& inputs,
                                           const AnalysisTensor& labels, const HostLoss& loss, bool loop) {
  torch::jit::Module module = LoadModule(std::move(model));
  const LossSpec spec = ToLoss(loss);
  const Batch batch = ToBatch(inputs, labels);
  auto engine = MakeGraphGradEngine(module);  // also checks the model (forward, trainable parameters)
  std::vector<at::Tensor> grads;
  if (loop) {
    std::vector<at::Tensor> parameters;
    for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
      if (parameter.value.requires_grad()) parameters.push_back(parameter.value);
    }
    if (batch.labels.dim() < 1 || batch.labels.size(0) < 1) Refuse("The labels must have the batch as first dimension");
    for (size_t i = 0; i < batch.inputs.size(); ++i) {
      if (batch.inputs[i].dim() < 1 || batch.inputs[i].size(0) != batch.labels.size(0)) {
        Refuse("Input " + std::to_string(i) + " does not have the labels' " + std::to_string(batch.labels.size(0)) +
               " samples as first dimension");
      }
    }
    grads = grad_sample::BatchOfOneGrads(module, batch, spec, parameters);
  } else {
    grads = engine->ComputePerSampleGrads(batch, spec);
  }
  std::vector<FloatArray> result;
  const auto& names = engine->TrainableParameters();
  for (size_t p = 0; p < grads.size(); ++p) result.push_back(ToFloats(names[p], grads[p]));
  return result;
}

HostClippedSum ClippedGradientSum(std::string model, const std::vector<AnalysisTensor>& inputs,
                                  const AnalysisTensor& labels, const HostLoss& loss, const HostClip& clip,
                                  const std::string& path) {
  ClipPath clip_path = ClipPath::kAuto;
  if (path == "materialize") clip_path = ClipPath::kMaterialize;
  else if (path == "ghost") clip_path = ClipPath::kGhost;
  else if (path != "auto") Refuse("Expected one of auto, materialize, ghost for path but received " + path);
  torch::jit::Module module = LoadModule(std::move(model));
  const LossSpec spec = ToLoss(loss);
  const Batch batch = ToBatch(inputs, labels);
  ClipSpec clip_spec;
  clip_spec.max_grad_norm = clip.max_grad_norm;
  clip_spec.groups = clip.groups;
  clip_spec.bounds = clip.bounds;
  auto engine = MakeGraphGradEngine(module);
  const ClippedSum sum = engine->ComputeClippedSum(batch, spec, clip_spec, clip_path);
  HostClippedSum result;
  const auto& names = engine->TrainableParameters();
  for (size_t p = 0; p < sum.grads.size(); ++p) result.grads.push_back(ToFloats(names[p], sum.grads[p]));
  result.per_sample_norms = ToFloats("", sum.per_sample_norms).data;
  result.losses = ToFloats("", sum.losses).data;
  return result;
}

}  // namespace bastion::core::dp
