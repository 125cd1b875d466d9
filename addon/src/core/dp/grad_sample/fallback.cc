// See fallback.h. Runs forward once per sample (the cost is per-call overhead, not arithmetic), and
// differentiates with autograd::grad restricted to the requested parameters, so .grad is never touched.
#include "core/dp/grad_sample/fallback.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

namespace bastion::core::dp::grad_sample {

std::vector<at::Tensor> BatchOfOneGrads(torch::jit::Module& module, const Batch& batch, const LossSpec& loss,
                                        const std::vector<at::Tensor>& parameters) {
  std::vector<at::Tensor> result;
  if (parameters.empty()) return result;
  const c10::AutoGradMode grad_mode(true);
  const int64_t size = batch.labels.size(0);
  for (const at::Tensor& parameter : parameters) {
    std::vector<int64_t> shape{size};
    shape.insert(shape.end(), parameter.sizes().begin(), parameter.sizes().end());
    result.push_back(at::zeros(shape, parameter.options().requires_grad(false)));
  }
  torch::jit::Method forward = module.get_method("forward");
  for (int64_t i = 0; i < size; ++i) {
    std::vector<c10::IValue> args;
    args.reserve(batch.inputs.size());
    for (const at::Tensor& input : batch.inputs) args.emplace_back(input.narrow(0, i, 1));
    const c10::IValue out = forward(std::move(args));
    if (!out.isTensor()) throw std::runtime_error("forward did not return a tensor");
    const at::Tensor sample_loss = PerSampleLoss(out.toTensor(), batch.labels.narrow(0, i, 1), loss).sum();
    const auto grads = torch::autograd::grad({sample_loss}, parameters, {}, /*retain_graph=*/false,
                                             /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t p = 0; p < parameters.size(); ++p) {
      if (grads[p].defined()) result[p].select(0, i).copy_(grads[p]);
    }
  }
  return result;
}

}  // namespace bastion::core::dp::grad_sample
