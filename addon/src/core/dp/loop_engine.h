// The batch-of-one gradient engine: for each sample alone, a forward of the original module, its
// per-sample loss, and torch::autograd::grad with respect to the trainable parameters. Slow (one
// forward and backward per sample) but exact by construction for every model libtorch can
// differentiate; it is the reference every faster engine is tested against.
#ifndef BASTION_CORE_DP_LOOP_ENGINE_H_
#define BASTION_CORE_DP_LOOP_ENGINE_H_

#include <memory>

#include "core/dp/grad_engine.h"

namespace bastion::core::dp {

// An engine over module's trainable parameters (those that require grad). Throws core::Error
// (kInvalidArgument) when the module has no forward method or no trainable parameter.
std::unique_ptr<GradEngine> MakeLoopGradEngine(torch::jit::Module& module);

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_LOOP_ENGINE_H_
