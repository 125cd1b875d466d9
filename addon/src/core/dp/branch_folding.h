// Static branch resolution for the per-sample gradient engine: replaces values that are provably
// constant while the engine runs (module training flags, autograd on, requires_grad of trainable
// parameters, no nested tensors) by constants, folds what follows from them (not, and/or, len of a
// string known non-empty, `x is x`, any/all of lists with a known element), and inlines every
// prim::If whose condition becomes constant. PyTorch's scripted TransformerEncoderLayer and
// MultiheadAttention check an inference fast path this way (torch/nn/modules/transformer.py,
// activation.py: `why_not_sparsity_fast_path` / `why_not_fast_path`), which puts every parameter
// use inside a prim::If; in training mode with autograd on that fast path cannot run.
// Only what the facts prove is folded; anything else stays as is.
#ifndef BASTION_CORE_DP_BRANCH_FOLDING_H_
#define BASTION_CORE_DP_BRANCH_FOLDING_H_

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/ivalue.h>

namespace torch::jit {
struct Graph;
struct Module;
struct Value;
}  // namespace torch::jit

namespace bastion::core::dp {

// What holds whenever the folded graph runs.
struct GraphFacts {
  // The `training` flag of every module of the model, when they all have this value.
  std::optional<bool> training;
  // torch.is_grad_enabled() is true.
  bool grad_enabled = false;
  // Values that are trainable parameters (requires_grad is true).
  std::function<bool(const torch::jit::Value*)> is_trainable;
  // The value of a prim::GetAttr of a bool, int, float or string attribute of a module (its value
  // when the engine was made), or nullopt. Used only when forward assigns no attribute.
  std::function<std::optional<c10::IValue>(const torch::jit::Value*)> attribute;
  // The rank of each forward input (graph input 1, 2, ...) when known: the engine is made per input
  // ranks, so `x.dim() == 3` (MultiheadAttention's is_batched) folds. Empty: unknown.
  std::vector<int64_t> input_ranks;
  // The rank of a module tensor a value is (a parameter or buffer), or nullopt.
  std::function<std::optional<int64_t>(const torch::jit::Value*)> tensor_rank;
  // No input and no module tensor is nested (FoldKnownBranches checks the graph's constants).
  bool dense_inputs = false;
};

// What holds when the DP engine runs `module`'s inlined forward graph (self: its input 0): autograd
// on, every module's training flag `training`, forward inputs of `ranks` (empty: unknown), dense
// batches. The engine folds with these; the upload check (core/model.cc) with training mode.
GraphFacts EngineFacts(const torch::jit::Module& module, const torch::jit::Value* self, std::optional<bool> training,
                       std::vector<int64_t> ranks);

// Folds in place; returns the number of prim::If nodes resolved.
size_t FoldKnownBranches(std::shared_ptr<torch::jit::Graph>& graph, const GraphFacts& facts);

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_BRANCH_FOLDING_H_
