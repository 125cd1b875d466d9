// The batch-of-one fallback: per-sample gradients one sample at a time, by autograd through the
// module's own forward on that sample alone. Exact for any model whose samples do not interact; the
// engine uses it for every parameter no rule covers, and tests use it as the reference.
#ifndef BASTION_CORE_DP_GRAD_SAMPLE_FALLBACK_H_
#define BASTION_CORE_DP_GRAD_SAMPLE_FALLBACK_H_

#include <vector>

#include <ATen/core/Tensor.h>

#include "core/dp/grad_engine.h"

namespace bastion::core::dp::grad_sample {

// g_i for each of `parameters` (tensors of the module that require grad): result[p] is
// [batch, *parameters[p].shape]. A parameter the loss does not depend on gets zeros.
std::vector<at::Tensor> BatchOfOneGrads(torch::jit::Module& module, const Batch& batch, const LossSpec& loss,
                                        const std::vector<at::Tensor>& parameters);

}  // namespace bastion::core::dp::grad_sample

#endif  // BASTION_CORE_DP_GRAD_SAMPLE_FALLBACK_H_
