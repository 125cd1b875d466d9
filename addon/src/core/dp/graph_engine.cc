// See graph_engine.h. Invariant: every trainable parameter gets exact per-sample gradients, either
// from rules covering every one of its uses in the graph, or from the batch-of-one fallback; a
// parameter used by several covered nodes (weight tying) gets the sum of their contributions before
// any norm is taken. "The graph" is forward with the branches resolved that cannot run under the
// facts of its Engine (branch_folding.h); an Engine runs only where they hold (ModeEngine).
#include "core/dp/graph_engine.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include "core/dp/branch_folding.h"
#include "core/dp/grad_sample/fallback.h"
#include "core/dp/grad_sample/layer.h"
#include "core/dp/grad_sample/recurrent.h"
#include "core/dp/noise.h"
#include "core/dp/tap.h"
#include "core/error.h"
#include "core/model.h"
#include "core/text.h"

namespace bastion::core::dp {
namespace {

namespace gs = grad_sample;
using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// Memory the rules may spend to save time in one run over a physical batch (LayerBatch::spare_bytes;
// a run's batches are released before the next run): a bound on what a private step adds above what
// it holds anyway, whatever the number and size of its layers (the memory target of issue 17 is 1.5x
// the non-private step's peak; a process holds 270 MB or more before any step).
constexpr int64_t kSpareBytes = int64_t{64} << 20;

std::string Location(const Node& node) { return SourceLocation(node); }

// sums[i] += x[i] in double, for a layer's squared norms x ([B], float or double).
void AddTo(std::vector<double>& sums, const at::Tensor& x) {
  const at::Tensor flat = x.dim() == 1 ? x : x.reshape({-1});
  if (flat.numel() != static_cast<int64_t>(sums.size())) {
    Refuse("A layer's per-sample norms have " + std::to_string(flat.numel()) + " entries for a batch of " +
           std::to_string(sums.size()));
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, flat.scalar_type(), "add_squared_norms", [&] {
    const at::Tensor dense = flat.contiguous();
    const scalar_t* values = dense.data_ptr<scalar_t>();
    for (size_t i = 0; i < sums.size(); ++i) sums[i] += static_cast<double>(values[i]);
  });
}

std::string At(const Node& node) {
  const std::string location = Location(node);
  return location.empty() ? std::string() : " at " + location;
}

// The attribute path of a prim::GetAttr chain from self, e.g. {"net", "0", "weight"}.
std::optional<std::vector<std::string>> AttrPath(const Value* value, const Value* self) {
  std::vector<std::string> names;
  while (value != self) {
    const Node* node = value->node();
    if (node->kind() != c10::prim::GetAttr) return std::nullopt;
    names.push_back(node->s(c10::attr::name));
    value = node->input();
  }
  std::reverse(names.begin(), names.end());
  return names;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ".") + name;
  return out;
}

std::optional<c10::IValue> AttrValue(const torch::jit::Module& module, const std::vector<std::string>& path) {
  c10::IValue value = module._ivalue();
  for (const std::string& name : path) {
    if (!value.isObject()) return std::nullopt;
    const auto object = value.toObject();
    if (!object->type()->hasAttribute(name)) return std::nullopt;
    value = object->getAttr(name);
  }
  return value;
}

struct Use {
  std::string kind;  // node kind of the user
  std::string where;
  bool nested = false;
  int64_t layer = -1;  // the covering layer, or -1
  std::string reason;  // why it is not covered
};

struct LayerEntry {
  std::unique_ptr<gs::Layer> layer;
  std::string kind;
  std::string where;
  Value* a = nullptr;
  Value* z = nullptr;
  size_t a_out = 0, z_out = 0;  // positions in the captured tuple (after the output)
  // Per slot: the row slice of its parameter the node reads (null for the whole parameter), and its
  // position in the captured tuple, where the slice's rows are read at run time.
  std::vector<Value*> slices;
  std::vector<size_t> slice_out;
  bool active = true;
  bool taped = false;                       // a recurrent layer: reads its tape, has no (a, z) in the capture
  std::shared_ptr<gs::RnnTapeHandle> tape;  // its tape, whose id the rewritten node writes to
  std::string reason;                       // when not active
  int64_t batch_dim = 0;                    // of a, z and δ, as the probe found it
  // Or the batch merged with the rows of dimension 0 ([T·B, E] as nn.MultiheadAttention's
  // out-projection sees it): row r is sample r % B (inner) or r / (rows / B) (outer).
  enum class Merge { kNone, kInner, kOuter } merge = Merge::kNone;
};

struct Contribution {
  size_t layer;
  size_t slot;
};

class Engine final : public GraphGradEngine {
 public:
  // training: the flag every module has whenever this engine runs (nullopt: unknown); ranks: the
  // ranks of forward's inputs whenever it runs (empty: unknown).
  Engine(torch::jit::Module& module, std::optional<bool> training, std::vector<int64_t> ranks) : module_(module) {
    const auto forward = module_.find_method("forward");
    if (!forward) Refuse("The model has no forward method");
    for (const auto& parameter : module_.named_parameters(/*recurse=*/true)) {
      if (!parameter.value.requires_grad()) continue;
      index_[parameter.name] = static_cast<int64_t>(names_.size());
      impl_index_[parameter.value.unsafeGetTensorImpl()] = static_cast<int64_t>(names_.size());
      names_.push_back(parameter.name);
      parameters_.push_back(parameter.value);
    }
    if (names_.empty()) Refuse("The model has no trainable parameter (none requires grad)");
    uses_.resize(names_.size());

    graph_ = forward->graph()->copy();
    torch::jit::Inline(*graph_);
    torch::jit::RemoveTensorMutation(graph_);
    torch::jit::EliminateDeadCode(graph_);
    self_ = graph_->inputs()[0];
    GraphFacts facts = EngineFacts(module_, self_, training, std::move(ranks));
    FoldKnownBranches(graph_, facts);
    if (graph_->outputs().size() != 1 || graph_->outputs()[0]->type()->kind() != c10::TypeKind::TensorType) {
      Refuse("The model's forward must return one tensor, not " + graph_->outputs()[0]->type()->str());
    }
    inputs_ = graph_->inputs().size() - 1;
    compiles_per_shape_ = HasConvolution(graph_->block());
    Analyse();
    RewriteRecurrent();
    BuildCapture();
    Resolve();
  }

  const std::vector<std::string>& TrainableParameters() const override { return names_; }
  bool CompilesPerShape() const override { return compiles_per_shape_; }

  std::vector<ParameterRule> Plan() const override {
    std::vector<ParameterRule> plan;
    for (size_t p = 0; p < names_.size(); ++p) {
      ParameterRule rule;
      rule.parameter = names_[p];
      if (fast_[p]) {
        for (const Contribution& c : contributions_[p]) {
          const std::string name = layers_[c.layer].layer->Rule();
          rule.rule += (rule.rule.empty() ? "" : "+") + name;
        }
        if (Sliced(p)) {
          rule.reason = "split into row slices read by " + std::to_string(contributions_[p].size()) +
                        " node(s): each slice by its node's rule, in its rows (materialised where slices overlap)";
        } else if (contributions_[p].size() > 1) {
          rule.reason = "used by " + std::to_string(contributions_[p].size()) + " nodes (tied): contributions summed";
        }
      } else {
        rule.rule = "fallback";
        rule.reason = fallback_reason_[p];
      }
      plan.push_back(std::move(rule));
    }
    return plan;
  }

  ClippedSum ComputeClippedSum(const Batch& batch, const LossSpec& loss, const ClipSpec& clip) override {
    return ComputeClippedSum(batch, loss, clip, ClipPath::kAuto);
  }

  ClippedSum ComputeClippedSum(const Batch& batch, const LossSpec& loss, const ClipSpec& clip, ClipPath path) override {
    const int64_t size = CheckBatch(batch);
    const int64_t padding = batch.padding;
    if (padding < 0 || padding >= size) Refuse("The padding must leave at least one sample of the batch");
    const int64_t real = size - padding;
    const std::vector<int64_t> group_of = CheckClip(clip);
    const size_t groups = clip.groups.empty() ? 1 : clip.groups.size();
    // The norms of a parameter with one layer are taken as soon as its layer is ready, in the backward.
    std::vector<at::Tensor> early(names_.size());
    const auto on_layer = [&](Work& work, size_t l) {
      const auto& slots = layers_[l].layer->slots;
      for (size_t s = 0; s < slots.size(); ++s) {
        const auto p = static_cast<size_t>(slots[s].parameter);
        if (Single(p)) early[p] = work.batches[l]->NormSquared(s);
      }
    };
    Work work = Run(batch, loss, path, on_layer);

    // Per parameter: either its one layer (layer, slot), whose path gives its norms and weighted sum
    // (ghost, or from the per-sample gradients the layer computes its own way), or materialised g_i
    // (the sum of several layers' contributions, or the fallback's).
    std::vector<at::Tensor> materialized(names_.size());
    std::vector<std::optional<Contribution>> single(names_.size());
    std::vector<bool> apart(names_.size(), false);
    // The squared norms per group, their total and the clip factors are B numbers each: plain loops
    // in double, not a dozen tensor operations per parameter (their dispatch cost more than the
    // arithmetic on a small model).
    std::vector<std::vector<double>> norm2(groups, std::vector<double>(static_cast<size_t>(size), 0.0));
    for (size_t p = 0; p < names_.size(); ++p) {
      at::Tensor n2;
      if (Single(p)) {
        single[p] = contributions_[p][0];
        n2 = early[p].defined() ? early[p] : work.batches[single[p]->layer]->NormSquared(single[p]->slot);
      } else if (SlicesApart(work, p)) {
        apart[p] = true;
        for (const Contribution& c : contributions_[p]) {
          AddTo(norm2[static_cast<size_t>(group_of[p])], work.batches[c.layer]->NormSquared(c.slot));
        }
        continue;
      } else {
        materialized[p] = PerSample(work, p);
        n2 = materialized[p].reshape({size, -1}).pow(2).sum(1);
      }
      AddTo(norm2[static_cast<size_t>(group_of[p])], n2);
    }
    std::vector<double> total(static_cast<size_t>(size), 0.0);
    std::vector<at::Tensor> factors(groups);
    for (size_t g = 0; g < groups; ++g) {
      const double bound = clip.groups.empty() ? clip.max_grad_norm : clip.bounds[g];
      factors[g] = at::empty({size}, at::kDouble);
      double* factor = factors[g].data_ptr<double>();
      for (int64_t i = 0; i < size; ++i) {
        const double n2 = norm2[g][static_cast<size_t>(i)];
        total[static_cast<size_t>(i)] += n2;
        // min(1, C / (||g_i|| + 1e-6)), NaN kept; 0 for padding rows.
        const double f = std::isinf(bound) ? 1.0 : bound / (std::sqrt(n2) + 1e-6);
        factor[i] = i >= real ? 0.0 : (f > 1.0 ? 1.0 : f);
      }
    }
    // A padding row copies a real one, so it fails where that one does; if it alone fails (a model that
    // treats the copy differently), 0 · NaN would still reach the sum: the batch fails as a whole, and the
    // trainer runs its samples alone.
    if (padding > 0 && !(std::all_of(total.begin() + real, total.end(), [](double n) { return std::isfinite(n); }) &&
                         work.losses.narrow(0, real, padding).isfinite().all().item<bool>())) {
      throw Error(ErrorCode::kNonFinite, "A padding row of the batch has a non-finite loss or gradient norm");
    }
    ClippedSum result;
    // A float parameter's layer takes its factors in float: converted once per group, not per parameter
    // (a layer computing in another dtype converts them again).
    std::vector<at::Tensor> float_factors(groups);
    for (size_t p = 0; p < names_.size(); ++p) {
      const auto g = static_cast<size_t>(group_of[p]);
      if (parameters_[p].scalar_type() == at::kFloat && !float_factors[g].defined()) {
        float_factors[g] = factors[g].to(at::kFloat);
      }
      const at::Tensor& c = parameters_[p].scalar_type() == at::kFloat ? float_factors[g] : factors[g];
      at::Tensor sum;
      if (single[p]) {
        sum = work.batches[single[p]->layer]->WeightedSum(single[p]->slot, c);
      } else if (apart[p]) {
        sum = at::zeros_like(parameters_[p]);
        for (const Contribution& part : contributions_[p]) {
          const auto [first, count] = work.rows[part.layer][part.slot];
          at::Tensor rows = sum.narrow(0, first, count);
          rows.add_(work.batches[part.layer]->WeightedSum(part.slot, c).reshape(rows.sizes()));
        }
      } else {
        const at::Tensor& g = materialized[p];
        sum = at::mm(c.to(g.scalar_type()).view({1, size}), g.reshape({size, -1})).view(parameters_[p].sizes());
      }
      // (Each reshape or detach is an operator call; most sums need neither.)
      if (sum.sizes() != parameters_[p].sizes()) sum = sum.reshape(parameters_[p].sizes());
      result.grads.push_back(sum.requires_grad() ? sum.detach() : sum);
    }
    result.per_sample_norms = at::empty({real}, at::kFloat);
    float* norms = result.per_sample_norms.data_ptr<float>();
    for (int64_t i = 0; i < real; ++i) norms[i] = static_cast<float>(std::sqrt(total[static_cast<size_t>(i)]));
    result.losses = work.losses.detach().narrow(0, 0, real).to(at::kFloat);
    return result;
  }

  std::vector<at::Tensor> ComputePerSampleGrads(const Batch& batch, const LossSpec& loss) override {
    CheckBatch(batch);
    if (batch.padding != 0) Refuse("Per-sample gradients take no padding rows");
    Work work = Run(batch, loss, ClipPath::kMaterialize);
    std::vector<at::Tensor> result;
    for (size_t p = 0; p < names_.size(); ++p) result.push_back(PerSample(work, p).detach());
    return result;
  }

  void Probe(const std::vector<at::Tensor>& inputs) override {
    if (inputs.size() != inputs_)
      Refuse("The model's forward takes " + std::to_string(inputs_) + " inputs, got " + std::to_string(inputs.size()));
    if (inputs.empty() || inputs[0].dim() < 1 || inputs[0].size(0) < 2) return;
    ProbeLayout(inputs);
  }

 private:
  struct Work {
    at::Tensor losses;
    std::vector<std::unique_ptr<gs::LayerBatch>> batches;  // per layer; null when inactive
    std::vector<bool> ghost;                               // per layer: path chosen
    std::vector<at::Tensor> fallback;                      // per parameter; defined for fallback ones
    // Per layer and slot: the rows [first, first + count) of its parameter a row slice covers.
    std::vector<std::vector<std::pair<int64_t, int64_t>>> rows;
    // The batches' shared budget of memory to spend for time (LayerBatch::spare_bytes).
    std::shared_ptr<int64_t> spare_bytes = std::make_shared<int64_t>(kSpareBytes);
  };

  // Node inputs as rules see them.
  gs::OpArg Resolve(Value* value) const {
    gs::OpArg arg;
    Node* node = value->node();
    if (node->kind() == c10::prim::Constant) {
      const auto constant = torch::jit::toIValue(value);
      if (constant && constant->isTensor()) {
        arg.kind = gs::OpArg::Kind::kState;
        arg.shape = constant->toTensor().sizes().vec();
      } else if (constant) {
        arg.kind = gs::OpArg::Kind::kConstant;
        arg.constant = *constant;
      }
      return arg;
    }
    if (node->kind() == c10::prim::ListConstruct) {
      c10::List<int64_t> ints;
      for (Value* element : node->inputs()) {
        const gs::OpArg e = Resolve(element);
        if (e.kind != gs::OpArg::Kind::kConstant || !e.constant.isInt()) return arg;
        ints.push_back(e.constant.toInt());
      }
      arg.kind = gs::OpArg::Kind::kConstant;
      arg.constant = ints;
      return arg;
    }
    if (const auto path = AttrPath(value, self_)) {
      const auto found = index_.find(Join(*path));
      if (found != index_.end()) {
        arg.kind = gs::OpArg::Kind::kParameter;
        arg.parameter = found->second;
        arg.shape = parameters_[static_cast<size_t>(found->second)].sizes().vec();
        return arg;
      }
      if (const auto attribute = AttrValue(module_, *path)) {
        if (attribute->isTensor()) {
          arg.kind = gs::OpArg::Kind::kState;
          if (attribute->toTensor().defined()) arg.shape = attribute->toTensor().sizes().vec();
        } else if (!attribute->isObject()) {
          arg.kind = gs::OpArg::Kind::kConstant;
          arg.constant = *attribute;
        }
      }
      return arg;
    }
    if (value->type()->kind() == c10::TypeKind::TensorType) arg.kind = gs::OpArg::Kind::kTensor;
    return arg;
  }

  // Whether a node splits a tensor into row slices, all of which are taken apart (prim::ListUnpack):
  // aten::split, aten::split_with_sizes or aten::chunk along dimension 0.
  bool IsRowSplit(const Node& node) const {
    const auto kind = node.kind();
    if (kind != c10::aten::split && kind != c10::aten::split_with_sizes && kind != c10::aten::chunk) return false;
    if (node.inputs().size() != 3 || node.outputs().size() != 1) return false;
    if (gs::ConstantInt(Resolve(node.input(2))) != std::optional<int64_t>(0)) return false;
    for (const torch::jit::Use& use : node.output()->uses()) {
      if (use.user->kind() != c10::prim::ListUnpack) return false;
    }
    return true;
  }

  // The trainable parameter whose row slice a value is (an element of IsRowSplit's list), or -1:
  // MultiheadAttention's packed in-projection in cross-attention, w_q, w_kv = w.split([E, 2E]). Its
  // sizes may be computed (E = query.size(-1)): where the slice lies is read at run time.
  int64_t SliceOf(const Value* value) const {
    const Node* unpack = value->node();
    if (unpack->kind() != c10::prim::ListUnpack) return -1;
    const Node* split = unpack->input()->node();
    return IsRowSplit(*split) ? ParameterOf(split->input(0)) : -1;
  }

  // The trainable parameter a value is, or -1.
  int64_t ParameterOf(const Value* value) const {
    if (value->node()->kind() != c10::prim::GetAttr) return -1;
    const auto path = AttrPath(value, self_);
    if (!path) return -1;
    const auto found = index_.find(Join(*path));
    return found == index_.end() ? -1 : found->second;
  }

  // The trainable parameters a Tensor[] value holds, one entry per element (-1 for an element that is
  // not one), when it is a list of module tensors: a list attribute (nn.LSTM's _flat_weights) or a
  // prim::ListConstruct of attributes (a traced model). nullopt for any other list.
  std::optional<std::vector<int64_t>> ParametersOfList(const Value* value) const {
    const Node* node = value->node();
    std::vector<int64_t> found;
    if (node->kind() == c10::prim::ListConstruct) {
      for (const Value* element : node->inputs()) found.push_back(ParameterOf(element));
      return found;
    }
    if (node->kind() != c10::prim::GetAttr || value->type()->kind() != c10::TypeKind::ListType) return std::nullopt;
    const auto path = AttrPath(value, self_);
    if (!path) return std::nullopt;
    const auto attribute = AttrValue(module_, *path);
    if (!attribute || !attribute->isTensorList()) return std::nullopt;
    for (const at::Tensor& t : attribute->toTensorVector()) {
      const auto it = impl_index_.find(t.unsafeGetTensorImpl());
      found.push_back(it == impl_index_.end() ? -1 : it->second);
    }
    return found;
  }

  void Analyse() {
    self_ = graph_->inputs()[0];
    VisitBlock(*graph_->block(), /*nested=*/false);
    for (size_t p = 0; p < names_.size(); ++p) {
      if (uses_[p].empty()) uses_[p].push_back({"", "", false, -1, "no use found in the forward graph"});
    }
  }

  void VisitBlock(Block& block, bool nested) {
    for (Node* node : block.nodes()) {
      VisitNode(*node, nested);
      for (Block* inner : node->blocks()) VisitBlock(*inner, /*nested=*/true);
    }
    // Values a block returns (If/Loop results, the graph's output).
    Node* ret = block.return_node();
    for (Value* input : ret->inputs()) {
      std::vector<int64_t> returned{ParameterOf(input)};
      if (const auto list = ParametersOfList(input)) returned.insert(returned.end(), list->begin(), list->end());
      for (int64_t p : returned) {
        if (p >= 0)
          uses_[static_cast<size_t>(p)].push_back({"a block output", "", nested, -1, "returned from a block"});
      }
    }
  }

  // Whether a node's outputs cannot carry a gradient: none, or all plain values (int, bool, float,
  // device, dtype, str: x.size(), w.is_cuda, w.dtype, `w is None`). Autograd gives such uses no
  // gradient either, so they are not uses that need a rule.
  static bool YieldsNoGradient(const Node& node) {
    for (const Value* output : node.outputs()) {
      switch (output->type()->kind()) {
        case c10::TypeKind::IntType:
        case c10::TypeKind::FloatType:
        case c10::TypeKind::BoolType:
        case c10::TypeKind::NumberType:
        case c10::TypeKind::StringType:
        case c10::TypeKind::NoneType:
        case c10::TypeKind::DeviceObjType:
        case c10::TypeKind::ScalarTypeType:
        case c10::TypeKind::LayoutType:
        case c10::TypeKind::MemoryFormatType:
          break;
        default:
          return false;
      }
    }
    return node.kind() != c10::prim::If && node.kind() != c10::prim::Loop;
  }

  void VisitNode(Node& node, bool nested) {
    // A list of parameters is not a use: whatever consumes the list is (ParametersOfList), and so is a block
    // that returns it.
    if (YieldsNoGradient(node) || node.kind() == c10::prim::ListConstruct) return;
    // A split of a parameter into row slices is not a use either: the slices' readers are.
    if (IsRowSplit(node) && ParameterOf(node.input(0)) >= 0) return;
    std::vector<std::pair<size_t, int64_t>> parameter_args;
    std::vector<size_t> slice_args;
    for (size_t i = 0; i < node.inputs().size(); ++i) {
      const int64_t p = ParameterOf(node.inputs()[i]);
      if (p >= 0) parameter_args.emplace_back(i, p);
      if (const int64_t q = SliceOf(node.inputs()[i]); q >= 0) {
        parameter_args.emplace_back(i, q);
        slice_args.push_back(i);
      }
      if (const auto list = ParametersOfList(node.inputs()[i])) {
        for (int64_t q : *list) {
          if (q >= 0) parameter_args.emplace_back(i, q);
        }
      }
    }
    if (parameter_args.empty()) return;
    const std::string kind = node.kind().toQualString();
    const std::string where = At(node);
    auto record = [&](size_t i, int64_t p, int64_t layer, const std::string& reason) {
      (void)i;
      uses_[static_cast<size_t>(p)].push_back({kind, where, nested, layer, reason});
    };
    if (nested) {
      for (const auto& [i, p] : parameter_args) {
        record(i, p, -1, "used by " + kind + where + " inside a prim::If or prim::Loop block");
      }
      return;
    }
    if (const auto mode = RecurrentMode(kind)) {
      std::string reason;
      if (MatchRecurrent(node, *mode, where, reason)) return;
      for (const auto& [i, p] : parameter_args) record(i, p, -1, "used by " + kind + where + ": " + reason);
      return;
    }
    const gs::Matcher matcher = gs::FindRule(kind);
    if (matcher == nullptr) {
      for (const auto& [i, p] : parameter_args) record(i, p, -1, "used by " + kind + where + ", which has no rule");
      return;
    }
    gs::OpView op;
    op.kind = kind;
    for (Value* input : node.inputs()) op.args.push_back(Resolve(input));
    // Row slices go to the linear rule, whose per-sample gradients need no shape from the analysis;
    // other rules see them as unknown values, and their parameter goes to the fallback.
    for (size_t i : slice_args) {
      if (kind != "aten::linear") break;
      gs::OpArg& arg = op.args[i];
      arg.kind = gs::OpArg::Kind::kParameter;
      arg.parameter = SliceOf(node.inputs()[i]);
      arg.row_slice = true;
    }
    gs::MatchResult match = matcher(op);
    if (!match.layer) {
      const std::string why = match.reason.empty() ? kind + " is not covered" : match.reason;
      for (const auto& [i, p] : parameter_args) record(i, p, -1, "used by " + why + where);
      return;
    }
    const int64_t layer = static_cast<int64_t>(layers_.size());
    LayerEntry entry;
    entry.kind = kind;
    entry.where = where;
    entry.a = node.inputs()[match.layer->activation_arg];
    entry.z = node.outputs()[0];
    for (const gs::Slot& slot : match.layer->slots)
      entry.slices.push_back(slot.row_slice ? node.inputs()[slot.arg] : nullptr);
    entry.slice_out.assign(entry.slices.size(), 0);
    for (const auto& [i, p] : parameter_args) {
      const bool slot = std::any_of(match.layer->slots.begin(), match.layer->slots.end(),
                                    [&](const gs::Slot& s) { return s.arg == i; });
      record(
          i, p, slot ? layer : -1,
          slot ? "" : "used by " + kind + where + " as input " + std::to_string(i) + ", which its rule does not cover");
    }
    entry.layer = std::move(match.layer);
    layers_.push_back(std::move(entry));
  }

  static std::optional<gs::RnnMode> RecurrentMode(const std::string& kind) {
    if (kind == "aten::lstm") return gs::RnnMode::kLstm;
    if (kind == "aten::gru") return gs::RnnMode::kGru;
    if (kind == "aten::rnn_tanh") return gs::RnnMode::kRnnTanh;
    if (kind == "aten::rnn_relu") return gs::RnnMode::kRnnRelu;
    return std::nullopt;
  }

  // A recurrent node (input overload: input, hx, params, has_biases, num_layers, dropout, train,
  // bidirectional, batch_first) becomes a taped layer and is queued for the rewrite to bastion::dp_rnn;
  // false with the reason when its configuration has no rule.
  bool MatchRecurrent(Node& node, gs::RnnMode mode, const std::string& where, std::string& reason) {
    const bool lstm = mode == gs::RnnMode::kLstm;
    if (node.inputs().size() != 9 || node.inputs()[lstm ? 1 : 2]->type()->kind() != c10::TypeKind::ListType) {
      reason = "a packed sequence (PackedSequence) has no rule";
      return false;
    }
    std::vector<gs::OpArg> args;
    for (size_t i = 3; i < 9; ++i) args.push_back(Resolve(node.inputs()[i]));
    const auto has_biases = gs::ConstantBool(args[0]);
    const auto num_layers = gs::ConstantInt(args[1]);
    const auto dropout = gs::ConstantDouble(args[2]);
    const auto train = gs::ConstantBool(args[3]);
    const auto bidirectional = gs::ConstantBool(args[4]);
    const auto batch_first = gs::ConstantBool(args[5]);
    if (!has_biases || !num_layers || !dropout || !train || !bidirectional || !batch_first || *num_layers < 1) {
      reason = "its configuration (layers, biases, dropout, direction, batch_first) is not constant";
      return false;
    }
    if (*train && *dropout > 0) {
      reason = "dropout between recurrent layers in training has no rule (its masks are drawn inside the kernel)";
      return false;
    }
    const size_t params_arg = 2;
    const auto params = ParametersOfList(node.inputs()[params_arg]);
    const int64_t directions = *bidirectional ? 2 : 1;
    const auto expected = static_cast<size_t>(*num_layers * directions * (*has_biases ? 4 : 2));
    if (!params || params->size() != expected) {
      reason = params ? "LSTM projections (proj_size) have no rule"
                      : "its weights are not a list of the module's parameters";
      return false;
    }
    for (const int64_t p : *params) {
      const at::ScalarType type = p < 0 ? at::kFloat : parameters_[static_cast<size_t>(p)].scalar_type();
      if (type != at::kFloat && type != at::kDouble) {
        reason = std::string("a recurrent layer in ") + c10::toString(type) +
                 " has no rule (its fused steps are written for float32 and float64)";
        return false;
      }
    }
    gs::RnnConfig config;
    config.mode = mode;
    config.has_biases = *has_biases;
    config.num_layers = *num_layers;
    config.bidirectional = *bidirectional;
    config.batch_first = *batch_first;
    std::vector<gs::Slot> slots;
    std::vector<size_t> flat;
    for (size_t k = 0; k < params->size(); ++k) {
      const int64_t p = (*params)[k];
      if (p < 0) continue;
      slots.push_back({params_arg, p, parameters_[static_cast<size_t>(p)].sizes().vec(), false});
      flat.push_back(k);
    }
    const int64_t layer = static_cast<int64_t>(layers_.size());
    LayerEntry entry;
    entry.kind = node.kind().toQualString();
    entry.where = where;
    entry.taped = true;
    entry.tape = std::make_shared<gs::RnnTapeHandle>();
    entry.layer = gs::MakeRecurrentLayer(config, entry.tape, slots, flat);
    for (const gs::Slot& slot : entry.layer->slots) {
      uses_[static_cast<size_t>(slot.parameter)].push_back({entry.kind, where, false, layer, ""});
    }
    layers_.push_back(std::move(entry));
    recurrent_.emplace_back(&node, static_cast<size_t>(layer));
    return true;
  }

  // Replaces each matched recurrent node by bastion::dp_rnn with its layer's tape (graph_ only: the
  // module's own forward, which the fallback and non-private training run, keeps aten::lstm).
  void RewriteRecurrent() {
    for (const auto& [node, layer] : recurrent_) {
      const torch::jit::WithInsertPoint guard(node);
      const auto mode = *RecurrentMode(node->kind().toQualString());
      Value* hx = node->inputs()[1];
      if (mode != gs::RnnMode::kLstm) {
        Node* list = graph_->createList(c10::TensorType::get(), {hx});
        list->insertBefore(node);
        hx = list->output();
      }
      const int64_t tape = layers_[layer].tape->id();
      std::vector<Value*> inputs{node->inputs()[0],           hx,
                                 node->inputs()[2],           graph_->insertConstant(static_cast<int64_t>(mode)),
                                 node->inputs()[3],           node->inputs()[4],
                                 node->inputs()[7],           node->inputs()[8],
                                 graph_->insertConstant(tape)};
      Node* replacement = graph_->create(c10::Symbol::fromQualString(gs::kDpRnnOperator), inputs, 3);
      replacement->insertBefore(node);
      replacement->copyMetadata(node);
      for (size_t i = 0; i < 3; ++i) replacement->output(i)->setType(c10::TensorType::get());
      for (size_t i = 0; i < node->outputs().size(); ++i) node->output(i)->replaceAllUsesWith(replacement->output(i));
      node->destroy();
      replacement->getOperation();  // fails here, not at the first batch, if the operator does not match
    }
    recurrent_.clear();
  }

  // Exposes (output, a_1, z_1, ...) as one tuple, and puts a tap (tap.h) after every exposed z, which all
  // of z's uses read instead; demotes layers whose values are written in place. The graph gains the
  // taps' key as its last input.
  void BuildCapture() {
    torch::jit::AliasDb alias(graph_);
    std::vector<Value*> exposed;
    std::unordered_map<Value*, size_t> position;
    auto expose = [&](Value* v) {
      const auto found = position.find(v);
      if (found != position.end()) return found->second;
      position[v] = exposed.size();
      exposed.push_back(v);
      return exposed.size() - 1;
    };
    for (size_t l = 0; l < layers_.size(); ++l) {
      LayerEntry& entry = layers_[l];
      if (entry.taped) continue;
      if (alias.hasWriters(entry.a) || alias.hasWriters(entry.z)) {
        Demote(l, entry.layer->Rule() + " node " + entry.kind + entry.where +
                      " has its input or output modified in place");
        continue;
      }
      entry.a_out = expose(entry.a);
      entry.z_out = expose(entry.z);
      for (size_t s = 0; s < entry.slices.size(); ++s) {
        if (entry.slices[s] != nullptr) entry.slice_out[s] = expose(entry.slices[s]);
      }
    }
    Value* key = graph_->addInput("tap_key")->setType(c10::TensorType::get());
    std::unordered_set<Value*> tapped;
    for (const LayerEntry& entry : layers_) {
      if (!entry.active || entry.taped || !tapped.insert(entry.z).second) continue;
      Node* next = entry.z->node()->next();
      const torch::jit::WithInsertPoint guard(next);
      Node* tap = graph_->create(c10::Symbol::fromQualString(kTapOperator),
                                 {entry.z, key, graph_->insertConstant(sink_.id()),
                                  graph_->insertConstant(static_cast<int64_t>(entry.z_out))});
      tap->insertBefore(next);
      tap->output()->setType(entry.z->type());
      entry.z->replaceAllUsesAfterNodeWith(tap, tap->output());
    }
    Value* output = graph_->outputs()[0];
    std::vector<Value*> values{output};
    values.insert(values.end(), exposed.begin(), exposed.end());
    graph_->eraseOutput(0);
    Node* tuple = graph_->createTuple(values);
    graph_->appendNode(tuple);
    graph_->registerOutput(tuple->output());
    capture_ = std::make_unique<torch::jit::GraphFunction>("forward_per_sample", graph_, nullptr,
                                                           torch::jit::ExecutorExecutionMode::SIMPLE);
  }

  void Demote(size_t layer, std::string reason) {
    layers_[layer].active = false;
    layers_[layer].reason = std::move(reason);
  }

  // Which parameters are covered by active layers only, and their contributions.
  void Resolve() {
    fast_.assign(names_.size(), false);
    fallback_reason_.assign(names_.size(), "");
    contributions_.assign(names_.size(), {});
    for (size_t p = 0; p < names_.size(); ++p) {
      bool covered = true;
      for (const Use& use : uses_[p]) {
        if (use.layer < 0) {
          covered = false;
          fallback_reason_[p] = use.reason;
          break;
        }
        const LayerEntry& entry = layers_[static_cast<size_t>(use.layer)];
        if (!entry.active) {
          covered = false;
          fallback_reason_[p] = entry.reason;
          break;
        }
      }
      fast_[p] = covered;
      if (!covered) continue;
      for (size_t l = 0; l < layers_.size(); ++l) {
        const auto& slots = layers_[l].layer->slots;
        for (size_t s = 0; s < slots.size(); ++s) {
          if (slots[s].parameter == static_cast<int64_t>(p)) contributions_[p].push_back({l, s});
        }
      }
    }
  }

  // Per layer: the batch its tape saw since the last call (taped layers), else -1.
  std::vector<int64_t> TapedBatches() {
    std::vector<int64_t> batches(layers_.size(), -1);
    for (size_t l = 0; l < layers_.size(); ++l) {
      if (layers_[l].taped) batches[l] = layers_[l].tape->Take().batch;
    }
    return batches;
  }

  bool AnyActive() const {
    return std::any_of(layers_.begin(), layers_.end(), [](const LayerEntry& e) { return e.active; });
  }

  std::vector<at::Tensor> RunCapture(const std::vector<at::Tensor>& inputs, at::Tensor& output) {
    torch::jit::Stack stack;
    stack.reserve(inputs.size() + 1);
    stack.emplace_back(module_._ivalue());
    for (const at::Tensor& input : inputs) stack.emplace_back(input);
    stack.emplace_back(key_);
    capture_->run(stack);
    auto elements = stack.back().toTupleRef().elements();
    if (!elements[0].isTensor()) Refuse("The model's forward did not return a tensor");
    output = elements[0].toTensor();
    std::vector<at::Tensor> values;
    for (size_t i = 1; i < elements.size(); ++i)
      values.push_back(elements[i].isTensor() ? elements[i].toTensor() : at::Tensor());
    return values;
  }

  // The dimension of `full` that holds the batch of `size`, when `one` is the same tensor for its
  // first sample alone: the only dimension that differs, 1 there and `size` here.
  static std::optional<int64_t> BatchDim(const at::Tensor& one, const at::Tensor& full, int64_t size) {
    if (!one.defined() || !full.defined() || one.dim() < 1 || one.dim() != full.dim()) return std::nullopt;
    std::optional<int64_t> found;
    for (int64_t d = 0; d < one.dim(); ++d) {
      if (one.size(d) == full.size(d)) continue;
      if (found || one.size(d) != 1 || full.size(d) != size) return std::nullopt;
      found = d;
    }
    return found;
  }

  // Whether `full` holds `size` times the rows of `one` in dimension 0, the rest equal.
  static bool Merged(const at::Tensor& one, const at::Tensor& full, int64_t size) {
    if (!one.defined() || !full.defined() || one.dim() < 2 || one.dim() != full.dim()) return false;
    if (one.size(0) < 2 || one.size(0) * size != full.size(0)) return false;
    for (int64_t d = 1; d < one.dim(); ++d) {
      if (one.size(d) != full.size(d)) return false;
    }
    return true;
  }

  // Which rows of each merged layer's output belong to which sample, from autograd: the rows of z
  // that out[b] has a non-zero gradient for must be exactly b's rows in one of the two layouts, for
  // every sample b. Batch independence (checked at upload) puts the true rows' support inside b's
  // rows; requiring every row of b to be reached makes the layout that matches the only one possible.
  // Anything else, or both layouts matching, goes to the fallback.
  //
  // Every sample is checked, in 2·⌈log2 B⌉ backward passes rather than B: pass (k, side) reaches the
  // rows that some sample whose index has bit k equal to side depends on. A row of one sample is
  // reached on exactly one side of every bit, and the sides spell its sample's index; a row that two
  // samples reach is reached on both sides of a bit where their indices differ, and a row no sample
  // reaches on neither. The outputs are weighted at random (in [0.5, 1.5)) so that no sum of several
  // samples' gradients cancels to zero by construction. (Checking samples 0, 1 and B-1 alone let a
  // model that moves the middle samples' rows through a layout that keeps those three in place pass.)
  void ResolveMerged(const std::vector<at::Tensor>& inputs, const std::vector<size_t>& merged, int64_t size) {
    const c10::AutoGradMode grad_mode(true);
    at::Tensor out;
    const auto values = RunCapture(inputs, out);
    std::vector<at::Tensor> zs;
    for (size_t l : merged) zs.push_back(values[layers_[l].z_out]);
    const bool usable = out.dim() >= 1 && out.size(0) == size &&
                        std::all_of(zs.begin(), zs.end(), [](const at::Tensor& z) { return z.requires_grad(); });
    std::vector<bool> inner(merged.size(), usable), outer(merged.size(), usable);
    if (usable) {
      int64_t bits = 1;
      while ((int64_t{1} << bits) < size) ++bits;
      const at::Tensor sample = at::arange(size);
      // From a generator of its own, keyed from the OS: libtorch's default one starts from a fixed seed.
      const at::Tensor weights = at::rand(out.sizes(), MakeOsSeededGenerator(), out.options()) + 0.5;
      std::vector<at::Tensor> owner;  // per layer and row: the sample index its sides spell
      for (const at::Tensor& z : zs) owner.push_back(at::zeros({z.size(0)}, at::kLong));
      std::vector<bool> single(merged.size(), true);
      for (int64_t k = 0; k < bits; ++k) {
        std::vector<at::Tensor> reached[2];
        for (int side = 0; side < 2; ++side) {
          std::vector<int64_t> mask_shape(static_cast<size_t>(out.dim()), 1);
          mask_shape[0] = size;
          const at::Tensor mask =
              sample.bitwise_right_shift(k).bitwise_and(1).eq(side).to(out.scalar_type()).view(mask_shape);
          const bool last = k + 1 == bits && side == 1;
          const auto grads = torch::autograd::grad({(out * weights * mask).sum()}, zs, {}, /*retain_graph=*/!last,
                                                   /*create_graph=*/false, /*allow_unused=*/true);
          for (size_t m = 0; m < merged.size(); ++m) {
            const int64_t rows_total = zs[m].size(0);
            reached[side].push_back(grads[m].defined() ? grads[m].reshape({rows_total, -1}).abs().sum(1).gt(0)
                                                       : at::zeros({rows_total}, at::kBool));
          }
        }
        for (size_t m = 0; m < merged.size(); ++m) {
          single[m] = single[m] && at::equal(reached[1][m], reached[0][m].logical_not());
          owner[m] += reached[1][m].to(at::kLong) * (int64_t{1} << k);
        }
      }
      for (size_t m = 0; m < merged.size(); ++m) {
        const int64_t rows_total = zs[m].size(0);
        const int64_t rows = rows_total / size;
        const at::Tensor index = at::arange(rows_total);
        inner[m] = single[m] && at::equal(owner[m], index.remainder(size));
        outer[m] = single[m] && at::equal(owner[m], index.div(rows, "floor"));
      }
    }
    for (size_t k = 0; k < merged.size(); ++k) {
      LayerEntry& entry = layers_[merged[k]];
      if (inner[k] != outer[k]) {
        entry.merge = inner[k] ? LayerEntry::Merge::kInner : LayerEntry::Merge::kOuter;
        continue;
      }
      Demote(merged[k], entry.kind + entry.where +
                            ": its input and output merge the batch with another dimension (shape " +
                            ShapeText(values[entry.a_out].sizes()) + " for a batch of " + std::to_string(size) +
                            ") in a way the layout check could not match to samples");
    }
  }

  // a, z or δ of a layer with the batch first.
  static at::Tensor BatchFirst(const LayerEntry& entry, const at::Tensor& t, int64_t size) {
    if (entry.merge == LayerEntry::Merge::kNone) {
      return entry.batch_dim == 0 ? t : t.movedim(entry.batch_dim, 0);  // a movedim to itself still costs a view
    }
    std::vector<int64_t> shape = t.sizes().vec();
    const int64_t rows = shape[0] / size;
    shape.erase(shape.begin());
    if (entry.merge == LayerEntry::Merge::kOuter) {
      shape.insert(shape.begin(), {size, rows});
      return t.view(shape);
    }
    shape.insert(shape.begin(), {rows, size});
    return t.view(shape).movedim(1, 0);
  }

  void ProbeLayout(const std::vector<at::Tensor>& inputs) {
    probed_ = true;
    if (!AnyActive()) return;
    const c10::AutoGradMode no_grad(false);
    const int64_t size = inputs[0].size(0);
    std::vector<at::Tensor> first;
    for (const at::Tensor& input : inputs) first.push_back(input.narrow(0, 0, 1));
    at::Tensor out_one, out_full;
    const auto one = RunCapture(first, out_one);
    const std::vector<int64_t> taped_one = TapedBatches();
    const auto full = RunCapture(inputs, out_full);
    const std::vector<int64_t> taped_full = TapedBatches();
    std::vector<size_t> merged;
    for (size_t l = 0; l < layers_.size(); ++l) {
      LayerEntry& entry = layers_[l];
      if (!entry.active) continue;
      if (entry.taped) {
        // The recurrence must run along time, not across samples: its batch is the model's (the upload
        // analysis refuses other layouts; this keeps a miss from mixing samples under one clip).
        if (taped_one[l] != 1 || taped_full[l] != size) {
          Demote(l, entry.kind + entry.where + ": its input does not keep the batch where batch_first says (" +
                        std::to_string(taped_full[l]) + " sequences for a batch of " + std::to_string(size) + ")");
        }
        continue;
      }
      const auto a_dim = BatchDim(one[entry.a_out], full[entry.a_out], size);
      const auto z_dim = BatchDim(one[entry.z_out], full[entry.z_out], size);
      // A rule that allows it gets the batch in another dimension, the same for a and z ([T, B, E]).
      const bool other_ok = entry.layer->AnyBatchDim() && a_dim && z_dim && *a_dim == *z_dim;
      if (a_dim == int64_t{0} && z_dim == int64_t{0}) continue;
      if (!other_ok && entry.layer->AnyBatchDim() && Merged(one[entry.a_out], full[entry.a_out], size) &&
          Merged(one[entry.z_out], full[entry.z_out], size) && one[entry.a_out].size(0) == one[entry.z_out].size(0)) {
        merged.push_back(l);
        continue;
      }
      if (other_ok) {
        entry.batch_dim = *a_dim;
        continue;
      }
      const bool a_ok = a_dim == int64_t{0};
      const at::Tensor& bad = a_ok ? full[entry.z_out] : full[entry.a_out];
      Demote(l, entry.kind + entry.where + ": its " + (a_ok ? "output" : "input") + " does not keep the batch in " +
                    (entry.layer->AnyBatchDim() ? "a dimension of its own, the same for input and output"
                                                : "its first dimension") +
                    " (shape " + (bad.defined() ? ShapeText(bad.sizes()) : std::string("?")) + " for a batch of " +
                    std::to_string(size) + ")");
    }
    if (!merged.empty()) ResolveMerged(inputs, merged, size);
    Resolve();
  }

  int64_t CheckBatch(const Batch& batch) const {
    if (batch.inputs.size() != inputs_) {
      Refuse("The model's forward takes " + std::to_string(inputs_) + " inputs, got " +
             std::to_string(batch.inputs.size()));
    }
    if (!batch.labels.defined() || batch.labels.dim() < 1) Refuse("The labels must have the batch as first dimension");
    const int64_t size = batch.labels.size(0);
    if (size < 1) Refuse("The batch is empty");
    for (size_t i = 0; i < batch.inputs.size(); ++i) {
      const at::Tensor& input = batch.inputs[i];
      if (!input.defined() || input.dim() < 1 || input.size(0) != size) {
        Refuse("Input " + std::to_string(i) + " has shape " + (input.defined() ? ShapeText(input.sizes()) : "?") +
               " but the labels have " + std::to_string(size) +
               " samples: every input needs the batch as first dimension");
      }
    }
    return size;
  }

  std::vector<int64_t> CheckClip(const ClipSpec& clip) const {
    std::vector<int64_t> group_of(names_.size(), 0);
    if (clip.groups.empty()) {
      if (!(clip.max_grad_norm > 0)) Refuse("maxGradNorm must be positive (or infinite for no clipping)");
      return group_of;
    }
    if (clip.bounds.size() != clip.groups.size()) Refuse("Per-layer clipping needs one bound per group");
    std::fill(group_of.begin(), group_of.end(), -1);
    for (size_t g = 0; g < clip.groups.size(); ++g) {
      if (!(clip.bounds[g] > 0)) Refuse("Every per-layer bound must be positive");
      for (int64_t p : clip.groups[g]) {
        if (p < 0 || p >= static_cast<int64_t>(names_.size()))
          Refuse("Clipping group " + std::to_string(g) + " names parameter index " + std::to_string(p) +
                 ", which does not exist");
        if (group_of[static_cast<size_t>(p)] >= 0)
          Refuse("Parameter " + names_[static_cast<size_t>(p)] + " is in more than one clipping group");
        group_of[static_cast<size_t>(p)] = static_cast<int64_t>(g);
      }
    }
    for (size_t p = 0; p < names_.size(); ++p) {
      if (group_of[p] < 0) Refuse("Parameter " + names_[p] + " is in no clipping group");
    }
    return group_of;
  }

  void CheckOutput(const at::Tensor& output, int64_t size) const {
    if (output.dim() < 1 || output.size(0) != size) {
      Refuse("The model output has " + std::to_string(output.dim() ? output.size(0) : 0) + " samples (shape " +
             ShapeText(output.sizes()) + ") but the batch has " + std::to_string(size) +
             ": outputs must keep the batch as first dimension, one row per sample");
    }
  }

  // on_layer(work, l), when given, runs as soon as layer l's batch is in work.batches (for most layers
  // inside the backward: see BuildCapture's taps).
  Work Run(const Batch& batch, const LossSpec& loss, ClipPath path,
           const std::function<void(Work&, size_t)>& on_layer = nullptr) {
    const int64_t size = batch.labels.size(0);
    if (!probed_ && size >= 2) ProbeLayout(batch.inputs);
    const c10::AutoGradMode grad_mode(true);
    Work work;
    work.batches.resize(layers_.size());
    work.ghost.assign(layers_.size(), false);
    if (AnyActive()) {
      at::Tensor output;
      std::vector<at::Tensor> values = RunCapture(batch.inputs, output);
      CheckOutput(output, size);
      work.rows.resize(layers_.size());
      for (size_t l = 0; l < layers_.size(); ++l) {
        const LayerEntry& entry = layers_[l];
        if (!entry.active || entry.taped) continue;
        work.rows[l].assign(entry.slices.size(), {0, 0});
        for (size_t s = 0; s < entry.slices.size(); ++s) {
          if (entry.slices[s] == nullptr) continue;
          const auto p = static_cast<size_t>(entry.layer->slots[s].parameter);
          work.rows[l][s] = RowsOf(values[entry.slice_out[s]], parameters_[p], names_[p]);
        }
      }
      work.losses = PerSampleLoss(output, batch.labels, loss);
      // The batch of the live tensors must be first (the probe saw a batch of ≥ 2 once).
      bool demoted = false;
      for (size_t l = 0; l < layers_.size(); ++l) {
        LayerEntry& entry = layers_[l];
        if (!entry.active || entry.taped) continue;
        const at::Tensor& a = values[entry.a_out];
        const at::Tensor& z = values[entry.z_out];
        const int64_t d = entry.batch_dim;
        const bool merged = entry.merge != LayerEntry::Merge::kNone;
        const bool fits =
            merged ? a.defined() && z.defined() && a.dim() >= 2 && a.size(0) % size == 0 && z.dim() >= 2 &&
                         z.size(0) == a.size(0)
                   : a.defined() && z.defined() && a.dim() > d && z.dim() > d && a.size(d) == size && z.size(d) == size;
        if (!fits) {
          Demote(l, entry.kind + entry.where + ": its input or output does not have the batch in dimension " +
                        std::to_string(d) + " as the layout check found");
          demoted = true;
        }
      }
      if (demoted) Resolve();
      // Layers with a fast slot; per captured value, the layers still to take it (as a or z) and, per z,
      // the layers whose output it is.
      std::vector<size_t> needed;
      std::vector<at::Tensor> forced;  // weights of taped layers
      std::vector<int> pending(values.size(), 0);
      std::unordered_map<size_t, std::vector<size_t>> by_z;
      for (size_t l = 0; l < layers_.size(); ++l) {
        const LayerEntry& entry = layers_[l];
        if (!entry.active) continue;
        const bool useful = std::any_of(entry.layer->slots.begin(), entry.layer->slots.end(),
                                        [&](const gs::Slot& s) { return fast_[static_cast<size_t>(s.parameter)]; });
        if (!useful) continue;
        needed.push_back(l);
        if (entry.taped) {
          // One of its weights among the targets makes autograd run the node's backward, which writes the tape.
          forced.push_back(parameters_[static_cast<size_t>(entry.layer->slots.front().parameter)]);
          continue;
        }
        ++pending[entry.a_out];
        ++pending[entry.z_out];
        by_z[entry.z_out].push_back(l);
      }
      for (size_t v = 0; v < values.size(); ++v) {
        if (pending[v] == 0) values[v] = at::Tensor();
      }
      std::vector<bool> done(layers_.size(), false);
      // A layer's batch from its a and δ; then on_layer (the caller's norms) and the values it no longer needs.
      const auto take = [&](size_t l, const at::Tensor& grad) {
        const LayerEntry& entry = layers_[l];
        const at::Tensor a = BatchFirst(entry, values[entry.a_out].detach(), size);
        const at::Tensor delta = BatchFirst(entry, grad.detach(), size);
        bool ghost = false;
        if (entry.layer->HasGhost()) {
          if (path == ClipPath::kGhost) {
            ghost = true;
          } else if (path == ClipPath::kAuto) {
            ghost = entry.layer->Cost(gs::Path::kGhost, a, delta) < entry.layer->Cost(gs::Path::kMaterialize, a, delta);
          }
        }
        work.ghost[l] = ghost;
        work.batches[l] = entry.layer->Prepare(a, delta, ghost ? gs::Path::kGhost : gs::Path::kMaterialize);
        work.batches[l]->spare_bytes = work.spare_bytes;
        done[l] = true;
        if (on_layer) on_layer(work, l);
        for (size_t v : {entry.a_out, entry.z_out}) {
          if (--pending[v] == 0) values[v] = at::Tensor();
        }
      };
      if ((!by_z.empty() || !forced.empty()) && work.losses.requires_grad()) {
        // Each layer's work runs in its tap's backward, as autograd reaches it. An error there waits
        // for the backward to end (the taps must not throw through autograd) and is rethrown after it.
        std::exception_ptr failed;
        const auto receive = [&](int64_t which, const at::Tensor& grad) {
          const auto found = by_z.find(static_cast<size_t>(which));
          if (failed || found == by_z.end()) return;
          try {
            for (size_t l : found->second) take(l, grad);
          } catch (...) {
            failed = std::current_exception();
          }
        };
        std::vector<at::Tensor> targets{key_};
        targets.insert(targets.end(), forced.begin(), forced.end());
        {
          const TapSink::Listening listening = sink_.Listen(receive);
          torch::autograd::grad({work.losses.sum()}, targets, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                /*allow_unused=*/true);
        }
        if (failed) std::rethrow_exception(failed);
      }
      for (size_t l : needed) {
        const LayerEntry& entry = layers_[l];
        if (entry.taped) {
          work.batches[l] = entry.layer->Prepare(at::Tensor(), at::Tensor(), gs::Path::kMaterialize);
          if (on_layer) on_layer(work, l);
        } else if (!done[l]) {
          take(l, at::zeros_like(values[entry.z_out]));  // the loss does not depend on its output
        }
      }
    } else {
      const c10::AutoGradMode no_grad(false);
      std::vector<c10::IValue> args(batch.inputs.begin(), batch.inputs.end());
      const c10::IValue out = module_.get_method("forward")(std::move(args));
      if (!out.isTensor()) Refuse("The model's forward did not return a tensor");
      CheckOutput(out.toTensor(), size);
      work.losses = PerSampleLoss(out.toTensor(), batch.labels, loss);
    }
    std::vector<at::Tensor> slow;
    std::vector<size_t> slow_index;
    for (size_t p = 0; p < names_.size(); ++p) {
      if (!fast_[p]) {
        slow.push_back(parameters_[p]);
        slow_index.push_back(p);
      }
    }
    work.fallback.resize(names_.size());
    if (!slow.empty()) {
      std::vector<at::Tensor> grads = gs::BatchOfOneGrads(module_, batch, loss, slow);
      for (size_t i = 0; i < slow.size(); ++i) work.fallback[slow_index[i]] = std::move(grads[i]);
    }
    return work;
  }

  // The rows [first, first + count) of `parameter` a row slice covers, from the slice the forward made: a
  // view of the parameter's own storage with its strides and trailing sizes, whole rows inside it.
  // Throws otherwise.
  static std::pair<int64_t, int64_t> RowsOf(const at::Tensor& slice, const at::Tensor& parameter,
                                            const std::string& name) {
    const int64_t offset = slice.defined() ? slice.storage_offset() - parameter.storage_offset() : -1;
    const bool fits = slice.defined() && parameter.dim() >= 1 && slice.dim() == parameter.dim() &&
                      slice.strides() == parameter.strides() && slice.sizes().slice(1) == parameter.sizes().slice(1) &&
                      slice.storage().is_alias_of(parameter.storage()) && offset >= 0 && parameter.stride(0) > 0 &&
                      offset % parameter.stride(0) == 0 &&
                      offset / parameter.stride(0) + slice.size(0) <= parameter.size(0);
    if (!fits) throw std::runtime_error("a split of parameter '" + name + "' is not a slice of its rows");
    return {offset / parameter.stride(0), slice.size(0)};
  }

  // Whether p is read only in row slices, none of whose rows overlap (one split taken apart once): then
  // ||g_i||² is the sum of the slices' own, and the clipped sum their clipped sums in their rows, each
  // from its layer's own path.
  bool SlicesApart(const Work& work, size_t p) const {
    if (!fast_[p] || contributions_[p].empty()) return false;
    std::vector<std::pair<int64_t, int64_t>> taken;
    for (const Contribution& c : contributions_[p]) {
      if (!layers_[c.layer].layer->slots[c.slot].row_slice) return false;
      taken.push_back(work.rows[c.layer][c.slot]);
    }
    std::sort(taken.begin(), taken.end());
    for (size_t k = 1; k < taken.size(); ++k) {
      if (taken[k].first < taken[k - 1].first + taken[k - 1].second) return false;
    }
    return true;
  }

  // Whether a contribution to p reads a row slice of it.
  bool Sliced(size_t p) const {
    return std::any_of(contributions_[p].begin(), contributions_[p].end(),
                       [&](const Contribution& c) { return layers_[c.layer].layer->slots[c.slot].row_slice; });
  }

  // Whether p's one layer gives its norms and clipped sum (ghost or its own way), not materialised g_i.
  bool Single(size_t p) const { return fast_[p] && contributions_[p].size() == 1 && !Sliced(p); }

  // g_i of parameter p, [B, *shape]: the sum of its layers' contributions (a row slice's in its rows),
  // or the fallback's.
  at::Tensor PerSample(Work& work, size_t p) const {
    if (!fast_[p]) return work.fallback[p];
    at::Tensor sum;
    if (!Sliced(p)) {
      for (const Contribution& c : contributions_[p]) {
        const at::Tensor g = work.batches[c.layer]->PerSample(c.slot);
        sum = sum.defined() ? sum + g : g;
      }
      return sum;
    }
    const at::Tensor& parameter = parameters_[p];
    for (const Contribution& c : contributions_[p]) {
      const at::Tensor g = work.batches[c.layer]->PerSample(c.slot);
      if (!sum.defined()) {
        std::vector<int64_t> shape{g.size(0)};
        shape.insert(shape.end(), parameter.sizes().begin(), parameter.sizes().end());
        sum = at::zeros(shape, g.options());
      }
      at::Tensor into = sum;
      if (layers_[c.layer].layer->slots[c.slot].row_slice) {
        const auto [first, count] = work.rows[c.layer][c.slot];
        into = sum.narrow(1, first, count);  // RowsOf checked that the rows lie inside the parameter
      }
      if (g.sizes() != into.sizes())
        throw std::runtime_error("per-sample gradients of a part of parameter '" + names_[p] + "' do not fit it");
      into.add_(g);
    }
    return sum;
  }

  torch::jit::Module module_;
  std::vector<std::string> names_;
  std::vector<at::Tensor> parameters_;
  std::unordered_map<std::string, int64_t> index_;
  std::unordered_map<const c10::TensorImpl*, int64_t> impl_index_;  // the same parameters, by tensor
  std::vector<std::pair<Node*, size_t>> recurrent_;                 // nodes to rewrite, with their layer
  std::vector<std::vector<Use>> uses_;
  std::vector<LayerEntry> layers_;
  std::vector<bool> fast_;
  std::vector<std::string> fallback_reason_;
  std::vector<std::vector<Contribution>> contributions_;
  std::shared_ptr<Graph> graph_;
  Value* self_ = nullptr;
  size_t inputs_ = 0;
  std::unique_ptr<torch::jit::GraphFunction> capture_;
  TapSink sink_;
  at::Tensor key_ = at::zeros({}).requires_grad_(true);  // the taps' key (tap.h)
  bool probed_ = false;
  bool compiles_per_shape_ = false;

  static bool HasConvolution(const torch::jit::Block* block) {
    for (const Node* node : block->nodes()) {
      const std::string kind = node->kind().toQualString();
      if (kind.rfind("aten::conv", 0) == 0 || kind == "aten::_convolution") return true;
      for (const torch::jit::Block* inner : node->blocks())
        if (HasConvolution(inner)) return true;
    }
    return false;
  }
};

// The folded graph depends on the modules' training flags and the inputs' ranks, so there is one
// Engine per flag and ranks the module runs with. DP training runs it in training mode (trainer.cc),
// so Plan() is that engine's, for the ranks of the last probe (unknown before one).
class ModeEngine final : public GraphGradEngine {
 public:
  explicit ModeEngine(torch::jit::Module& module) : module_(module) { For(true, {}); }

  const std::vector<std::string>& TrainableParameters() const override {
    return engines_.begin()->second->TrainableParameters();
  }
  std::vector<ParameterRule> Plan() const override { return engines_.at({1, probed_ranks_})->Plan(); }

  ClippedSum ComputeClippedSum(const Batch& batch, const LossSpec& loss, const ClipSpec& clip) override {
    return Current(batch.inputs).ComputeClippedSum(batch, loss, clip, ClipPath::kAuto);
  }
  ClippedSum ComputeClippedSum(const Batch& batch, const LossSpec& loss, const ClipSpec& clip, ClipPath path) override {
    return Current(batch.inputs).ComputeClippedSum(batch, loss, clip, path);
  }
  std::vector<at::Tensor> ComputePerSampleGrads(const Batch& batch, const LossSpec& loss) override {
    return Current(batch.inputs).ComputePerSampleGrads(batch, loss);
  }
  void Probe(const std::vector<at::Tensor>& inputs) override {
    For(true, Ranks(inputs)).Probe(inputs);
    probed_ranks_ = Ranks(inputs);
  }
  bool CompilesPerShape() const override { return engines_.begin()->second->CompilesPerShape(); }

 private:
  using Key = std::pair<int, std::vector<int64_t>>;  // training flag (0, 1; 2: mixed), input ranks

  static std::vector<int64_t> Ranks(const std::vector<at::Tensor>& inputs) {
    std::vector<int64_t> ranks;
    for (const at::Tensor& input : inputs) {
      if (!input.defined()) return {};
      ranks.push_back(input.dim());
    }
    return ranks;
  }

  Engine& For(std::optional<bool> training, const std::vector<int64_t>& ranks) {
    auto& engine = engines_[{!training ? 2 : *training ? 1 : 0, ranks}];
    if (!engine) engine = std::make_unique<Engine>(module_, training, ranks);
    return *engine;
  }

  // The engine for the flag all modules have now (unknown when they differ) and these inputs.
  Engine& Current(const std::vector<at::Tensor>& inputs) {
    std::optional<bool> training;
    bool mixed = false;
    for (const auto& module : module_.modules()) {
      const bool flag = module.is_training();
      if (training && *training != flag) mixed = true;
      training = flag;
    }
    return For(mixed ? std::nullopt : training, Ranks(inputs));
  }

  torch::jit::Module module_;
  std::map<Key, std::unique_ptr<Engine>> engines_;
  std::vector<int64_t> probed_ranks_;
};

}  // namespace

std::unique_ptr<GraphGradEngine> MakeGraphGradEngine(torch::jit::Module& module) {
  return std::make_unique<ModeEngine>(module);
}

std::unique_ptr<GradEngine> MakeGradEngine(torch::jit::Module& module) { return MakeGraphGradEngine(module); }

}  // namespace bastion::core::dp
