// MakeGradEngine until the per-sample gradient engine lands: the batch-of-one reference engine.
#include "core/dp/grad_engine.h"
#include "core/dp/loop_engine.h"

namespace bastion::core::dp {

std::unique_ptr<GradEngine> MakeGradEngine(torch::jit::Module& module) { return MakeLoopGradEngine(module); }

}  // namespace bastion::core::dp
