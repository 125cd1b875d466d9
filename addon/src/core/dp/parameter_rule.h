// Which rule computes each trainable parameter's per-sample gradient (GradEngine::Plan), torch-free so
// that the trainer's interface can report it.
#ifndef BASTION_CORE_DP_PARAMETER_RULE_H_
#define BASTION_CORE_DP_PARAMETER_RULE_H_

#include <string>

namespace bastion::core::dp {

struct ParameterRule {
  std::string parameter;  // qualified name, e.g. "net.0.weight"
  std::string rule;       // "linear", "conv2d", "embedding", "lstm", ..., "a+b" when tied, or "fallback"
  std::string reason;     // for "fallback": why no rule applies (e.g. "used by aten::matmul")
};

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_PARAMETER_RULE_H_
