// See branch_folding.h. Each round learns what holds of the graph as it is now (strings known
// non-empty, ints known ≥ 1), replaces the outputs it proves constant by prim::Constants, merges
// prim::If outputs that every branch gives the same value for (so `q is k` stays provable after
// `q = k = v = x.transpose(1, 0)` inside a branch), then lets ConstantPropagation fold the rest and
// inline the prim::Ifs with constant conditions; until nothing changes.
#include "core/dp/branch_folding.h"

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

namespace bastion::core::dp {
namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// Not among c10's interned symbols in libtorch 1.13.
const c10::Symbol kIsNested = c10::Symbol::fromQualString("prim::is_nested");
const c10::Symbol kIsGradEnabled = c10::Symbol::fromQualString("aten::is_grad_enabled");

bool IsModule(const Value* value) {
  const auto type = value->type()->cast<c10::ClassType>();
  return type && type->is_module();
}

template <typename Predicate>
bool AnyNode(Block* block, const Predicate& predicate) {
  for (Node* node : block->nodes()) {
    if (predicate(*node)) return true;
    for (Block* inner : node->blocks()) {
      if (AnyNode(inner, predicate)) return true;
    }
  }
  return false;
}

size_t CountIfs(Block* block) {
  size_t count = 0;
  for (Node* node : block->nodes()) {
    if (node->kind() == c10::prim::If) ++count;
    for (Block* inner : node->blocks()) count += CountIfs(inner);
  }
  return count;
}

std::optional<c10::IValue> ConstantOf(const Value* value) {
  if (value->node()->kind() != c10::prim::Constant) return std::nullopt;
  return torch::jit::toIValue(value);
}

bool IsBool(const Value* value, bool want) {
  const auto c = ConstantOf(value);
  return c && c->isBool() && c->toBool() == want;
}

bool IsInt(const Value* value, int64_t want) {
  const auto c = ConstantOf(value);
  return c && c->isInt() && c->toInt() == want;
}

bool IsString(const Value* value, const std::string& want) {
  const auto c = ConstantOf(value);
  return c && c->isString() && c->toStringRef() == want;
}

// aten::format replaces each "{}" by an argument: text left around them makes the result non-empty.
bool FormatNonEmpty(std::string format) {
  for (size_t at = format.find("{}"); at != std::string::npos; at = format.find("{}")) format.erase(at, 2);
  return !format.empty();
}

// The attribute path of a prim::GetAttr chain from self, e.g. "enc.self_attn.in_proj_weight".
std::optional<std::vector<std::string>> AttrPath(const Value* value, const Value* self) {
  std::vector<std::string> names;
  while (value != self) {
    const Node* node = value->node();
    if (node->kind() != c10::prim::GetAttr) return std::nullopt;
    names.insert(names.begin(), node->s(c10::attr::name));
    value = node->input();
  }
  return names;
}

std::optional<c10::IValue> AttrValue(const c10::IValue& root, const Value* value, const Value* self) {
  const auto path = AttrPath(value, self);
  if (!path || path->empty()) return std::nullopt;
  c10::IValue current = root;
  for (const std::string& name : *path) {
    if (!current.isObject()) return std::nullopt;
    const auto object = current.toObject();
    if (!object->type()->hasAttribute(name)) return std::nullopt;
    current = object->getAttr(name);
  }
  return current;
}

bool HasNestedConstant(Block* block) {
  return AnyNode(block, [](const Node& node) {
    if (node.kind() != c10::prim::Constant || node.outputs().size() != 1) return false;
    const auto constant = torch::jit::toIValue(node.output());
    return constant && constant->isTensor() && constant->toTensor().is_nested();
  });
}

// Nodes that may make a nested tensor (their names say so), or run code this pass cannot see.
bool MayMakeNested(const Node& node) {
  if (node.kind() == c10::prim::CallFunction || node.kind() == c10::prim::CallMethod) return true;
  if (node.kind() == kIsNested) return false;
  if (std::string(node.kind().toQualString()).find("nested") == std::string::npos) return false;
  for (const Value* output : node.outputs()) {
    if (output->type()->kind() != c10::TypeKind::BoolType && output->type()->kind() != c10::TypeKind::IntType)
      return true;
  }
  return false;
}

class Round {
 public:
  Round(Graph& graph, const GraphFacts& facts, bool attributes_written)
      : graph_(graph), facts_(facts), attributes_written_(attributes_written) {
    no_nested_ = facts.dense_inputs && !AnyNode(graph.block(), MayMakeNested) && !HasNestedConstant(graph.block());
  }

  // Whether anything was replaced.
  bool Run() {
    const auto inputs = graph_.inputs();
    for (size_t i = 0; i < facts_.input_ranks.size() && i + 1 < inputs.size(); ++i)
      rank_[inputs[i + 1]] = facts_.input_ranks[i];
    Visit(graph_.block());
    return replaced_;
  }

 private:
  void Visit(Block* block) {
    for (Node* node : block->nodes()) {
      for (Block* inner : node->blocks()) Visit(inner);
      Learn(*node);
      if (node->outputs().size() != 1 || !node->output()->hasUses()) continue;
      if (const auto value = Fold(*node)) {
        torch::jit::WithInsertPoint guard(node);
        node->output()->replaceAllUsesWith(graph_.insertConstant(*value));
        replaced_ = true;
      }
    }
  }

  std::optional<int64_t> RankOf(const Value* value) const {
    const auto found = rank_.find(value);
    if (found != rank_.end()) return found->second;
    if (value->node()->kind() == c10::prim::GetAttr && facts_.tensor_rank) return facts_.tensor_rank(value);
    return std::nullopt;
  }

  static bool IsTensor(const Value* value) { return value->type()->kind() == c10::TypeKind::TensorType; }

  // Whether a tensor value is an object its node creates: an op that never returns one of its inputs
  // (views included: each makes a new tensor object). Ops that may hand back their input unchanged
  // (contiguous, to, dropout, flatten, reshape, ...) are not listed.
  static bool Created(const Value* value) {
    static const std::unordered_set<std::string> creates = {
        "aten::linear", "aten::layer_norm", "aten::add",       "aten::sub",     "aten::mul",
        "aten::matmul", "aten::bmm",        "aten::transpose", "aten::permute", "aten::embedding"};
    const Node* node = value->node();
    return IsTensor(value) && node->outputs().size() == 1 && creates.count(node->kind().toQualString()) > 0;
  }

  // The values appended to a list that is built empty and then, in its own block (so each append runs
  // once per list), only given distinct created tensors (Created), before it is taken apart:
  // MultiheadAttention's `[x.transpose(1, 0) for x in (query, key)]` once inlined. Its elements are
  // then distinct objects, none of them a graph input. nullopt for any other list.
  static std::optional<std::vector<const Value*>> FreshList(const Value* list) {
    const Node* producer = list->node();
    if (producer->kind() != c10::prim::ListConstruct || !producer->inputs().empty()) return std::nullopt;
    std::vector<const Value*> appended;
    for (const torch::jit::Use& use : list->uses()) {
      const Node* user = use.user;
      if (user->kind() == c10::prim::ListUnpack) continue;
      if (user->kind() != c10::aten::append || use.offset != 0 || user->owningBlock() != producer->owningBlock() ||
          !Created(user->input(1)) || std::find(appended.begin(), appended.end(), user->input(1)) != appended.end())
        return std::nullopt;
      appended.push_back(user->input(1));
    }
    return appended;
  }

  // Whether a and b (distinct values) are always distinct objects, so that `a is b` is false
  // (MultiheadAttention's `query is key` in cross-attention): both created by their nodes; one created
  // and the other a graph input, which exists before any node runs; or elements of a FreshList, which
  // are its distinct appended tensors.
  bool Distinct(const Value* a, const Value* b) const {
    if (a == b || !IsTensor(a) || !IsTensor(b)) return false;
    const bool input_b = b->node() == graph_.param_node();
    if (Created(a)) {
      if (Created(b) || input_b) return true;
      const auto list = ElementOf(b);
      return list && std::find(list->begin(), list->end(), a) == list->end();
    }
    const auto list = ElementOf(a);
    if (!list) return false;
    if (input_b) return true;
    if (b->node() == a->node()) return true;  // two elements of the same unpacking
    return Created(b) && std::find(list->begin(), list->end(), b) == list->end();
  }

  // The appended values of the FreshList a value was unpacked from (prim::ListUnpack), or nullopt.
  static std::optional<std::vector<const Value*>> ElementOf(const Value* value) {
    if (value->node()->kind() != c10::prim::ListUnpack) return std::nullopt;
    return FreshList(value->node()->input());
  }

  // Ranks through the ops between forward's inputs and MultiheadAttention's `query.dim()`; an op
  // not listed gives an unknown rank.
  void LearnRank(const Node& node) {
    if (node.outputs().empty()) return;
    if (!IsTensor(node.outputs()[0]) && node.kind() != c10::prim::If && node.kind() != c10::prim::TupleConstruct)
      return;
    const std::string kind = node.kind().toQualString();
    const auto& in = node.inputs();
    std::optional<int64_t> rank;
    static const std::unordered_set<std::string> same = {
        "aten::relu",        "aten::gelu",    "aten::tanh",       "aten::sigmoid", "aten::dropout",
        "aten::layer_norm",  "aten::softmax", "aten::contiguous", "aten::clone",   "aten::neg",
        "aten::transpose",   "aten::linear",  "aten::silu",       "aten::detach",  "aten::to",
        "aten::log_softmax", "aten::elu",     "aten::leaky_relu", "aten::slice"};
    static const std::unordered_set<std::string> broadcast = {"aten::add", "aten::sub", "aten::mul", "aten::div"};
    if (node.kind() == c10::prim::If) {
      for (size_t i = 0; i < node.outputs().size(); ++i) {
        std::optional<int64_t> common;
        bool agree = true;
        for (const Block* block : node.blocks()) {
          const auto r = RankOf(block->outputs()[i]);
          if (!r || (common && *common != *r)) agree = false;
          common = r;
        }
        if (agree && common) rank_[node.outputs()[i]] = *common;
      }
      return;
    }
    if (node.kind() == c10::prim::TupleConstruct) {
      tuples_[node.output()] = &node;
      return;
    }
    if (node.kind() == c10::prim::ListUnpack && in.size() == 1 && in[0]->node()->kind() == c10::prim::ListConstruct) {
      // A list of tensors of one rank, built and appended to (`[x.transpose(1, 0) for x in (query, key)]`):
      // its elements have that rank.
      std::optional<int64_t> common;
      bool agree = true;
      const auto join = [&](const Value* element) {
        const auto r = RankOf(element);
        if (!r || (common && *common != *r)) agree = false;
        common = r;
      };
      for (const Value* element : in[0]->node()->inputs()) join(element);
      for (const torch::jit::Use& use : in[0]->uses()) {
        if (use.user->kind() == c10::aten::append && use.offset == 0) {
          join(use.user->input(1));
        } else if (use.user->kind() != c10::prim::ListUnpack) {
          agree = false;
        }
      }
      if (agree && common) {
        for (const Value* output : node.outputs()) rank_[output] = *common;
      }
      return;
    }
    if (node.kind() == c10::prim::TupleUnpack || node.kind() == c10::prim::TupleIndex) {
      const auto tuple = tuples_.find(in[0]);
      if (tuple == tuples_.end()) return;
      const auto& elements = tuple->second->inputs();
      for (size_t i = 0; i < node.outputs().size(); ++i) {
        const auto c = node.kind() == c10::prim::TupleIndex ? ConstantOf(in[1]) : c10::IValue(static_cast<int64_t>(i));
        if (!c || !c->isInt() || c->toInt() < 0 || c->toInt() >= static_cast<int64_t>(elements.size())) continue;
        if (const auto r = RankOf(elements[static_cast<size_t>(c->toInt())])) rank_[node.outputs()[i]] = *r;
      }
      return;
    }
    if (node.outputs().size() != 1 || in.empty()) return;
    if ((kind == "aten::view" || kind == "aten::reshape") && in.size() == 2 &&
        in[1]->node()->kind() == c10::prim::ListConstruct) {
      rank = static_cast<int64_t>(in[1]->node()->inputs().size());
    } else if (kind == "aten::bmm") {
      rank = 3;
    } else if (same.count(kind) && IsTensor(in[0])) {
      rank = RankOf(in[0]);
    } else if (broadcast.count(kind) && in.size() >= 2 && IsTensor(in[0])) {
      const auto a = RankOf(in[0]);
      if (!IsTensor(in[1])) {
        rank = a;
      } else if (const auto b = RankOf(in[1]); a && b) {
        rank = std::max(*a, *b);
      }
    } else if (kind == "aten::embedding" && in.size() >= 2) {
      if (const auto r = RankOf(in[1])) rank = *r + 1;
    } else if (kind == "aten::unsqueeze") {
      if (const auto r = RankOf(in[0])) rank = *r + 1;
    }
    if (rank) rank_[node.output()] = *rank;
  }

  void Learn(const Node& node) {
    LearnRank(node);
    const auto kind = node.kind();
    if (kind == c10::prim::Constant) {
      const auto c = ConstantOf(node.output());
      if (c && c->isString() && !c->toStringRef().empty()) nonempty_.insert(node.output());
    } else if (kind == c10::aten::format && node.inputs().size() >= 1) {
      const auto c = ConstantOf(node.input(0));
      if (c && c->isString() && FormatNonEmpty(c->toStringRef())) nonempty_.insert(node.output());
    } else if (kind == c10::aten::add && node.inputs().size() == 2 &&
               node.output()->type()->kind() == c10::TypeKind::StringType) {
      if (nonempty_.count(node.input(0)) || nonempty_.count(node.input(1))) nonempty_.insert(node.output());
    } else if (kind == c10::prim::If) {
      for (size_t i = 0; i < node.outputs().size(); ++i) {
        bool all = true;
        for (const Block* block : node.blocks()) all = all && nonempty_.count(block->outputs()[i]) > 0;
        if (all) nonempty_.insert(node.outputs()[i]);
      }
    } else if (kind == c10::aten::len && node.inputs().size() == 1 && nonempty_.count(node.input(0))) {
      positive_.insert(node.output());
    }
  }

  // Whether the list `list` (built empty or from values, then only appended to) holds `want` when
  // `reader` runs.
  static bool ListHolds(const Value* list, const Node& reader, bool want) {
    const Node* producer = list->node();
    if (producer->kind() != c10::prim::ListConstruct) return false;
    bool found = false;
    for (const Value* element : producer->inputs()) found = found || IsBool(element, want);
    for (const torch::jit::Use& use : list->uses()) {
      const Node* user = use.user;
      if (user == &reader) continue;
      if (user->kind() != c10::aten::append || use.offset != 0) return false;  // any other use might change it
      if (user->owningBlock() == reader.owningBlock() && user->isBefore(&reader) && IsBool(user->input(1), want))
        found = true;
    }
    return found;
  }

  std::optional<c10::IValue> Fold(const Node& node) const {
    const auto kind = node.kind();
    const auto& in = node.inputs();
    if (kind == c10::prim::GetAttr && !attributes_written_ && IsModule(in[0])) {
      if (node.s(c10::attr::name) == "training") {
        if (facts_.training) return c10::IValue(*facts_.training);
      } else if (facts_.attribute) {
        return facts_.attribute(node.output());
      }
    } else if (kind == kIsGradEnabled && in.empty()) {
      if (facts_.grad_enabled) return c10::IValue(true);
    } else if (kind == c10::prim::requires_grad && in.size() == 1) {
      if (facts_.is_trainable && facts_.is_trainable(in[0])) return c10::IValue(true);
    } else if (kind == kIsNested && in.size() == 1) {
      if (no_nested_) return c10::IValue(false);
    } else if ((kind == c10::aten::__is__ || kind == c10::aten::__isnot__) && in.size() == 2) {
      if (in[0] == in[1]) return c10::IValue(kind == c10::aten::__is__);
      if (Distinct(in[0], in[1]) || Distinct(in[1], in[0])) return c10::IValue(kind == c10::aten::__isnot__);
    } else if (kind == c10::aten::any && in.size() == 1 && in[0]->type()->kind() == c10::TypeKind::ListType) {
      if (ListHolds(in[0], node, true)) return c10::IValue(true);
    } else if (kind == c10::aten::all && in.size() == 1 && in[0]->type()->kind() == c10::TypeKind::ListType) {
      if (ListHolds(in[0], node, false)) return c10::IValue(false);
    } else if (in.size() == 2 && positive_.count(in[0])) {
      // len(s) compared with 0 or 1, s known non-empty.
      if ((kind == c10::aten::gt || kind == c10::aten::ne) && IsInt(in[1], 0)) return c10::IValue(true);
      if (kind == c10::aten::ge && IsInt(in[1], 1)) return c10::IValue(true);
      if ((kind == c10::aten::eq || kind == c10::aten::le) && IsInt(in[1], 0)) return c10::IValue(false);
      if (kind == c10::aten::lt && IsInt(in[1], 1)) return c10::IValue(false);
    } else if ((kind == c10::aten::eq || kind == c10::aten::ne) && in.size() == 2) {
      const bool empty_vs_known =
          (IsString(in[0], "") && nonempty_.count(in[1])) || (IsString(in[1], "") && nonempty_.count(in[0]));
      if (empty_vs_known) return c10::IValue(kind == c10::aten::ne);
    } else if (kind == c10::aten::Bool && in.size() == 1 && nonempty_.count(in[0])) {
      return c10::IValue(true);
    } else if (kind == c10::aten::dim && in.size() == 1) {
      if (const auto rank = RankOf(in[0])) return c10::IValue(*rank);
    }
    return std::nullopt;
  }

  Graph& graph_;
  const GraphFacts& facts_;
  bool attributes_written_;
  bool no_nested_ = false;
  bool replaced_ = false;
  std::unordered_set<const Value*> nonempty_;             // strings never empty
  std::unordered_set<const Value*> positive_;             // ints ≥ 1
  std::unordered_map<const Value*, int64_t> rank_;        // tensors of known rank
  std::unordered_map<const Value*, const Node*> tuples_;  // tuples by their prim::TupleConstruct
};

// Output k of a prim::If is output j when every branch returns the same value for both.
bool MergeIfOutputs(Block* block) {
  bool merged = false;
  for (Node* node : block->nodes()) {
    for (Block* inner : node->blocks()) merged = MergeIfOutputs(inner) || merged;
    if (node->kind() != c10::prim::If) continue;
    const size_t count = node->outputs().size();
    for (size_t k = 1; k < count; ++k) {
      if (!node->outputs()[k]->hasUses()) continue;
      for (size_t j = 0; j < k; ++j) {
        bool same = true;
        for (const Block* branch : node->blocks()) same = same && branch->outputs()[j] == branch->outputs()[k];
        if (!same || *node->outputs()[j]->type() != *node->outputs()[k]->type()) continue;
        node->outputs()[k]->replaceAllUsesWith(node->outputs()[j]);
        merged = true;
        break;
      }
    }
  }
  return merged;
}

}  // namespace

GraphFacts EngineFacts(const torch::jit::Module& module, const Value* self, std::optional<bool> training,
                       std::vector<int64_t> ranks) {
  GraphFacts facts;
  facts.training = training;
  facts.grad_enabled = true;  // the engine and its fallback differentiate with autograd on
  facts.input_ranks = std::move(ranks);
  auto trainable = std::make_shared<std::unordered_set<std::string>>();
  facts.dense_inputs = true;
  for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
    if (parameter.value.requires_grad()) trainable->insert(parameter.name);
  }
  for (const auto& attribute : module.named_attributes(/*recurse=*/true)) {
    if (attribute.value.isTensor() && attribute.value.toTensor().defined() && attribute.value.toTensor().is_nested())
      facts.dense_inputs = false;
  }
  const c10::IValue root = module._ivalue();
  facts.is_trainable = [trainable, self](const Value* value) {
    const auto path = AttrPath(value, self);
    if (!path || path->empty()) return false;
    std::string name;
    for (const std::string& part : *path) name += (name.empty() ? "" : ".") + part;
    return trainable->count(name) > 0;
  };
  facts.attribute = [root, self](const Value* value) -> std::optional<c10::IValue> {
    const auto attribute = AttrValue(root, value, self);
    if (!attribute || !(attribute->isBool() || attribute->isInt() || attribute->isDouble() || attribute->isString()))
      return std::nullopt;
    return attribute;
  };
  facts.tensor_rank = [root, self](const Value* value) -> std::optional<int64_t> {
    const auto attribute = AttrValue(root, value, self);
    if (!attribute || !attribute->isTensor() || !attribute->toTensor().defined()) return std::nullopt;
    return attribute->toTensor().dim();
  };
  return facts;
}

size_t FoldKnownBranches(std::shared_ptr<Graph>& graph, const GraphFacts& facts) {
  const size_t before = CountIfs(graph->block());
  // A model that assigns attributes in forward makes them unknown.
  const bool attributes_written =
      AnyNode(graph->block(), [](const Node& node) { return node.kind() == c10::prim::SetAttr; });
  for (int round = 0; round < 64; ++round) {
    const size_t ifs = CountIfs(graph->block());
    bool changed = Round(*graph, facts, attributes_written).Run();
    changed = MergeIfOutputs(graph->block()) || changed;
    torch::jit::ConstantPropagationImmutableTypes(graph);
    torch::jit::EliminateDeadCode(graph);
    if (!changed && CountIfs(graph->block()) == ifs) break;
  }
  return before - CountIfs(graph->block());
}

}  // namespace bastion::core::dp
