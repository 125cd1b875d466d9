// The GradEngine built by graph surgery (MakeGradEngine returns one). Once, when it is made: inline
// forward, remove tensor mutation, resolve the branches that are constant while it runs
// (branch_folding.h: the modules' training flags, autograd on, the inputs' ranks; one engine per
// flag and ranks, and Plan() is training mode's, as DP-SGD runs), match every top-level node against the rules in
// grad_sample/, send every parameter no rule fully covers to the batch-of-one fallback, and rewrite the graph so that
// it returns (output, a_1, z_1, ...) for the covered nodes, with a tap (tap.h) after each z_i, run by a SIMPLE-mode
// GraphFunction (the profiling executor fuses z_i away). Per batch: one forward, then one backward of Σ l_i that runs
// no weight gradient, in which each tap hands its δ_i to the rule as autograd computes it: the rule's per-sample
// norms are taken there and the activations it no longer needs let go; the clipped sums follow.
//
// Batch layout: a rule needs to know which part of its node's input and output is each sample's.
// The first batch with at least two samples is also run as a batch of one; the dimension that
// scales from 1 to B there is the batch. Rules that allow it (Layer::AnyBatchDim, e.g. linear on
// nn.MultiheadAttention's [T, B, E]) get it moved first; when dimension 0 grows from T to T·B (the
// merged [T·B, E] of its out-projection), autograd on that batch tells which rows are whose, and
// only a layout that matches every row exactly is taken. Any other layer goes to the fallback for
// good, and Plan() says so.
#ifndef BASTION_CORE_DP_GRAPH_ENGINE_H_
#define BASTION_CORE_DP_GRAPH_ENGINE_H_

#include <memory>
#include <vector>

#include "core/dp/grad_engine.h"

namespace bastion::core::dp {

// How ComputeClippedSum obtains norms and sums. kAuto picks per layer by the rules' cost estimates;
// the others force a path wherever a rule has it (for tests: every path gives the same numbers).
enum class ClipPath { kAuto, kMaterialize, kGhost };

class GraphGradEngine : public GradEngine {
 public:
  using GradEngine::ComputeClippedSum;
  virtual ClippedSum ComputeClippedSum(const Batch& batch, const LossSpec& loss, const ClipSpec& clip,
                                       ClipPath path) = 0;
  // Runs the batch-layout check on these inputs now (batch of at least two; no labels needed).
  virtual void Probe(const std::vector<at::Tensor>& inputs) = 0;
  // Whether the forward runs convolutions, whose CPU kernels oneDNN compiles for each input shape: each
  // batch size not seen before costs a compilation (the trainer pads private batches for them).
  virtual bool CompilesPerShape() const = 0;
};

// As MakeGradEngine.
std::unique_ptr<GraphGradEngine> MakeGraphGradEngine(torch::jit::Module& module);

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_GRAPH_ENGINE_H_
