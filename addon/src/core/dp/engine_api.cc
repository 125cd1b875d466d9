// See engine_api.h: copies the caller's tensors (checked against their dtypes and shapes), runs the
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

// A copy of the caller's tensor, which the model may then write to.
at::Tensor ToTensor(const HostTensor& host) { return WrapHostTensor(host).clone(); }

std::vector<at::Tensor> ToTensors(const std::vector<HostTensor>& hosts) {
  std::vector<at::Tensor> tensors;
  for (const HostTensor& host : hosts) tensors.push_back(ToTensor(host));
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

LossSpec ToLoss(const LossConfig& config) {
  std::vector<std::string> problems;
  const std::optional<LossSpec> loss = ParseLoss(config, problems);
  if (!loss) {
    std::string message;
    for (const std::string& problem : problems) message += (message.empty() ? "" : "; ") + problem;
    Refuse(message);
  }
  return *loss;
}

Batch ToBatch(const std::vector<HostTensor>& inputs, const HostTensor& labels) {
  Batch batch;
  batch.inputs = ToTensors(inputs);
  batch.labels = ToTensor(labels);
  return batch;
}

}  // namespace

std::vector<ParameterRule> GradientPlan(std::string model, const std::vector<HostTensor>& probe_inputs) {
  torch::jit::Module module = LoadModule(std::move(model));
  auto engine = MakeGraphGradEngine(module);
  if (!probe_inputs.empty()) engine->Probe(ToTensors(probe_inputs));
  return engine->Plan();
}

std::vector<FloatArray> PerSampleGradients(std::string model, const std::vector<HostTensor>& inputs,
                                           const HostTensor& labels, const LossConfig& loss, bool loop) {
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

HostClippedSum ClippedGradientSum(std::string model, const std::vector<HostTensor>& inputs, const HostTensor& labels,
                                  const LossConfig& loss, const HostClip& clip, const std::string& path,
                                  int64_t padding) {
  ClipPath clip_path = ClipPath::kAuto;
  if (path == "materialize")
    clip_path = ClipPath::kMaterialize;
  else if (path == "ghost")
    clip_path = ClipPath::kGhost;
  else if (path != "auto")
    Refuse("Expected one of auto, materialize, ghost for path but received " + path);
  torch::jit::Module module = LoadModule(std::move(model));
  const LossSpec spec = ToLoss(loss);
  Batch batch = ToBatch(inputs, labels);
  batch.padding = padding;
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
