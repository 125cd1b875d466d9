// Loads TorchScript archives from memory, reports their structure and what their inlined forward
// graph does, and copies out their tensors; the only TU that parses archives. Every tensor of a
// loaded module and of its forward graph is checked before anything reads it: its view must lie
// inside its storage, and its storage inside the data the archive held for it (libtorch 1.13 loads
// both kinds of lie, and reading such a tensor reads the heap).
#include "core/model.h"

#include <malloc.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <c10/core/CPUAllocator.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/operator.h>
#include <torch/script.h>

#include "core/archive_check.h"
#include "core/dp/branch_folding.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/graph_json.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "ExtractTensors returns the host's bytes, which it documents as little-endian");

namespace bastion::core {
namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// Serves reads from an owned copy of the archive. Owning it means no JS memory (possibly a
// SharedArrayBuffer another thread writes to) is read during parsing; reads are clamped to the
// size because libtorch's own MemoryReadAdapter copies without a bounds check.
class ByteReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit ByteReader(std::string bytes) : bytes_(std::move(bytes)) {}

  size_t size() const override { return bytes_.size(); }

  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    const size_t available = bytes_.size() - static_cast<size_t>(pos);
    const size_t count = std::min(n, available);
    std::memcpy(buf, bytes_.data() + pos, count);
    return count;
  }

 private:
  std::string bytes_;
};

[[noreturn]] void RefuseTensor(const std::string& name, const std::string& why) {
  throw Error(ErrorCode::kModelLoadFailed, "Tensor '" + name + "' " + why);
}

// libtorch 1.13 sizes a loaded storage from the pickle's numel but fills it from the zip record:
// a record shorter than the pickle claims becomes a storage larger than its buffer. The buffer comes
// from the CPU allocator (posix_memalign, through getRecord), so glibc knows its real size; storages
// from any other allocator are left to the pre-load check, which compares records with the pickle.
void CheckStorageBuffer(const std::string& name, const c10::Storage& storage) {
  static const c10::DeleterFnPtr cpu_deleter = c10::GetCPUAllocator()->allocate(1).get_deleter();
  const c10::DataPtr& data = storage.data_ptr();
  // An empty record gives a null buffer (the allocator returns none for 0 bytes).
  const size_t buffer = data.get() == nullptr ? 0
                        : data.get_deleter() == cpu_deleter && data.get_context() == data.get()
                            ? malloc_usable_size(data.get())
                            : storage.nbytes();  // not ours to measure
  if (buffer < storage.nbytes()) {
    RefuseTensor(name, "has a storage of " + std::to_string(storage.nbytes()) + " bytes but the archive holds only " +
                           std::to_string(buffer) + " bytes of data for it");
  }
}

// Every element the tensor's sizes and strides address must lie inside its storage, and the
// storage inside the data the archive held.
void CheckTensorBounds(const std::string& name, const at::Tensor& tensor) {
  if (!tensor.defined() || tensor.layout() != c10::kStrided || !tensor.has_storage()) return;
  CheckStorageBuffer(name, tensor.storage());
  if (tensor.numel() == 0) return;
  int64_t last = tensor.storage_offset();
  if (last < 0) RefuseTensor(name, "has a negative storage offset");
  const auto sizes = tensor.sizes();
  const auto strides = tensor.strides();
  for (size_t d = 0; d < sizes.size(); ++d) {
    int64_t extent = 0;
    if (strides[d] < 0 || __builtin_mul_overflow(sizes[d] - 1, strides[d], &extent) ||
        __builtin_add_overflow(last, extent, &last)) {
      RefuseTensor(name, "has sizes and strides that address no valid storage");
    }
  }
  const auto item = static_cast<int64_t>(tensor.dtype().itemsize());
  int64_t needed = 0;
  if (__builtin_mul_overflow(last + 1, item, &needed) || static_cast<uint64_t>(needed) > tensor.storage().nbytes()) {
    RefuseTensor(name, "addresses more bytes than its storage holds (" + std::to_string(needed) + " > " +
                           std::to_string(tensor.storage().nbytes()) + ")");
  }
}

// Walks every value reachable from the module object (attributes of submodules, tensors in lists,
// tuples, dicts and objects) without recursion, each container once, so cyclic or deep pickles
// neither loop nor overflow the stack.
void CheckModuleTensors(const torch::jit::Module& module) {
  std::vector<std::pair<c10::IValue, std::string>> pending{{module._ivalue(), ""}};
  std::unordered_set<const void*> seen;
  auto join = [](const std::string& path, const std::string& name) { return path.empty() ? name : path + "." + name; };
  while (!pending.empty()) {
    auto [value, path] = std::move(pending.back());
    pending.pop_back();
    if (value.isTensor()) {
      CheckTensorBounds(path, value.toTensor());
      continue;
    }
    if (!value.isPtrType() || !seen.insert(value.internalToPointer()).second) continue;
    if (value.isObject()) {
      const auto object = value.toObject();
      const auto type = object->type();
      const auto& slots = object->slots();
      for (size_t i = 0; i < slots.size(); ++i) {
        const bool named = type && i < type->numAttributes();
        pending.emplace_back(slots[i], join(path, named ? type->getAttributeName(i) : std::to_string(i)));
      }
    } else if (value.isList()) {
      const auto list = value.toListRef();
      for (size_t i = 0; i < list.size(); ++i) pending.emplace_back(list[i], path + "[" + std::to_string(i) + "]");
    } else if (value.isTuple()) {
      const auto& elements = value.toTupleRef().elements();
      for (size_t i = 0; i < elements.size(); ++i)
        pending.emplace_back(elements[i], path + "[" + std::to_string(i) + "]");
    } else if (value.isGenericDict()) {
      for (const auto& entry : value.toGenericDict()) {
        pending.emplace_back(entry.key(), path + "{key}");
        pending.emplace_back(entry.value(), path + "{value}");
      }
    }
  }
}

torch::jit::Module Load(std::string bytes) {
  try {
    auto archive = std::make_shared<ByteReader>(std::move(bytes));
    CheckArchive(archive);
    // The ReadAdapter overload accepts only the zip format; the istream overload would also hand
    // the bytes to the flatbuffer (mobile) loader.
    torch::jit::Module module = torch::jit::load(archive, c10::Device(c10::kCPU));
    CheckModuleTensors(module);
    return module;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (...) {
    std::throw_with_nested(Error(ErrorCode::kModelLoadFailed, "Cannot load the TorchScript archive"));
  }
}

TensorInfo DescribeTensor(const std::string& name, const at::Tensor& tensor) {
  TensorInfo info;
  info.name = name;
  if (!tensor.defined()) {
    info.dtype = "undefined";
    return info;
  }
  const auto sizes = tensor.sizes();
  info.shape.assign(sizes.begin(), sizes.end());
  info.dtype = DtypeName(tensor.scalar_type());
  info.requires_grad = tensor.requires_grad();
  info.contiguous = tensor.layout() == c10::kStrided && tensor.is_contiguous();
  return info;
}

std::string Location(const Node& node) { return SourceLocation(node); }

template <typename Visitor>
void ForEachNode(const Block& block, bool top_level, const Visitor& visit) {
  for (const Node* node : block.nodes()) {
    visit(*node, top_level);
    for (const Block* nested : node->blocks()) ForEachNode(*nested, /*top_level=*/false, visit);
  }
}

bool IsNone(const Value* value) {
  if (value->type()->kind() == c10::TypeKind::NoneType) return true;
  const auto constant = torch::jit::toIValue(value);
  return constant && constant->isNone();
}

bool IsConstantFalse(const Value* value) {
  const auto constant = torch::jit::toIValue(value);
  return constant && constant->isBool() && !constant->toBool();
}

// Whether the node normalises with statistics of the batch that it also writes to buffers.
bool UsesBatchStatistics(const Node& node) {
  static const auto kBatchNorm = c10::Symbol::fromQualString("aten::batch_norm");
  static const auto kBatchNormImpl = c10::Symbol::fromQualString("aten::_batch_norm_impl_index");
  static const auto kNativeBatchNorm = c10::Symbol::fromQualString("aten::native_batch_norm");
  static const auto kInstanceNorm = c10::Symbol::fromQualString("aten::instance_norm");
  // All four schemas: (input, weight, bias, running_mean, running_var, bool training-or-
  // use_input_stats, ...).
  constexpr size_t kRunningMean = 3;
  constexpr size_t kTraining = 5;
  const auto kind = node.kind();
  const bool batch_norm = kind == kBatchNorm || kind == kBatchNormImpl || kind == kNativeBatchNorm;
  if (!batch_norm && kind != kInstanceNorm) return false;
  if (node.inputs().size() <= kTraining) return true;                    // not the schema we know: assume the worst
  if (!batch_norm && IsNone(node.inputs()[kRunningMean])) return false;  // no running statistics
  return !IsConstantFalse(node.inputs()[kTraining]);
}

// The alias sets an annotation names, its contained types' included ("Tensor(a)[]" names a).
void CollectAliasSets(const c10::AliasInfo& info, std::unordered_set<c10::Symbol>& sets) {
  sets.insert(info.beforeSets().begin(), info.beforeSets().end());
  for (const c10::AliasInfo& contained : info.containedTypes()) CollectAliasSets(contained, sets);
}

std::unordered_set<c10::Symbol> AliasSets(const c10::AliasInfo* info) {
  std::unordered_set<c10::Symbol> sets;
  if (info != nullptr) CollectAliasSets(*info, sets);
  return sets;
}

// Whether a schema lets a return alias an argument: they share an alias set, or one may alias
// anything (wildcard). Arguments without annotation never alias a return.
bool MayAlias(const std::unordered_set<c10::Symbol>& returned, const c10::AliasInfo* argument) {
  if (returned.empty() || argument == nullptr) return false;
  const auto sets = AliasSets(argument);
  const c10::Symbol wildcard = c10::AliasInfo::wildcardSet();
  if (returned.count(wildcard) > 0 || sets.count(wildcard) > 0) return true;
  return std::any_of(sets.begin(), sets.end(), [&](c10::Symbol set) { return returned.count(set) > 0; });
}

// Whether a value of this type can alias or hold mutable state (AliasDb::isMutableType, which
// libtorch does not export): scalars, strings, devices and tuples of them are copies.
bool IsMutableType(const c10::TypePtr& type) {
  switch (type->kind()) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::FloatType:
    case c10::TypeKind::ComplexType:
    case c10::TypeKind::BoolType:
    case c10::TypeKind::NumberType:
    case c10::TypeKind::StringType:
    case c10::TypeKind::NoneType:
    case c10::TypeKind::DeviceObjType:
    case c10::TypeKind::StreamObjType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
    case c10::TypeKind::QSchemeType:
    case c10::TypeKind::EnumType:
      return false;
    case c10::TypeKind::TupleType:
    case c10::TypeKind::OptionalType:
    case c10::TypeKind::UnionType: {
      const auto contained = type->containedTypes();
      return std::any_of(contained.begin(), contained.end(), [](const c10::TypePtr& t) { return IsMutableType(t); });
    }
    default:
      return true;  // tensors, lists, dicts, objects, Any, interfaces, futures
  }
}

// Which values of the graph may be, alias or contain module state (self, and whatever a
// prim::GetAttr reads from it), with the qualified name of the state each came from. A flow-
// insensitive fixpoint over the inlined graph, over values of mutable types only (tensors, lists,
// dicts, objects; an int read from an attribute is a copy): a value is state when it is read from
// state, or is an output that the operator's schema lets alias an argument that is state, or is an
// output of a node without schema-based alias analysis (list and tuple construction, casts,
// control flow) fed by state, or is a container a mutating operator may store state into
// (list.append(self.w)). Outputs of pure operators (aten::mul, aten::zeros_like, ...) are fresh,
// so in-place operators on activations (relu_) are not writes to state.
class StateValues {
 public:
  explicit StateValues(const Graph& graph) {
    if (graph.inputs().empty()) return;
    origin_[graph.inputs()[0]] = "";  // self
    do {
      changed_ = false;
      VisitBlock(*graph.block());
    } while (changed_);
  }

  bool Contains(const Value* value) const { return origin_.count(value) > 0; }

  // The qualified name of the state a value may hold, e.g. "bn.running_mean"; "self" for self.
  std::string Origin(const Value* value) const {
    const std::string origin = RawOrigin(value);
    return origin.empty() ? "self" : origin;
  }

  // As Origin, but "" for self, ready for Join.
  std::string RawOrigin(const Value* value) const {
    const auto it = origin_.find(value);
    return it == origin_.end() ? std::string() : it->second;
  }

  static std::string Join(const std::string& path, const std::string& name) {
    return path.empty() ? name : path + "." + name;
  }

 private:
  void Mark(const Value* value, const std::string& origin) {
    if (!IsMutableType(value->type())) return;
    if (origin_.emplace(value, origin).second) changed_ = true;
  }

  const Value* FirstState(c10::ArrayRef<const Value*> values) const {
    for (const Value* value : values) {
      if (Contains(value)) return value;
    }
    return nullptr;
  }

  void VisitBlock(const Block& block) {
    for (const Node* node : block.nodes()) Visit(*node);
  }

  static bool HasSchemaAliasAnalysis(const Node& node) {
    const torch::jit::Operator* op = node.maybeOperator();
    if (op == nullptr || node.maybeSchema() == nullptr) return false;
    const auto kind = op->aliasAnalysisKind();
    return kind == c10::AliasAnalysisKind::FROM_SCHEMA || kind == c10::AliasAnalysisKind::PURE_FUNCTION;
  }

  void Visit(const Node& node) {
    if (node.kind() == c10::prim::GetAttr) {
      if (Contains(node.input())) Mark(node.output(), Join(RawOrigin(node.input()), node.s(c10::attr::name)));
      return;
    }
    for (const Block* block : node.blocks()) VisitBlock(*block);
    if (node.kind() == c10::prim::Loop && node.blocks().size() == 1) {
      // inputs (max_trip, cond, carried...), body inputs (i, carried...), body outputs (cond,
      // carried...), node outputs (carried...).
      const Block& body = *node.blocks()[0];
      const size_t carried = node.outputs().size();
      for (size_t i = 0; i < carried; ++i) {
        const Value* in = i + 2 < node.inputs().size() ? node.inputs()[i + 2] : nullptr;
        const Value* back = i + 1 < body.outputs().size() ? body.outputs()[i + 1] : nullptr;
        const Value* source = in && Contains(in) ? in : (back && Contains(back) ? back : nullptr);
        if (source == nullptr) continue;
        if (i + 1 < body.inputs().size()) Mark(body.inputs()[i + 1], RawOrigin(source));
        Mark(node.outputs()[i], RawOrigin(source));
      }
      return;
    }
    if (!node.blocks().empty()) {
      // prim::If (outputs are the blocks' outputs by position) and anything else with blocks.
      for (size_t i = 0; i < node.outputs().size(); ++i) {
        for (const Block* block : node.blocks()) {
          if (i < block->outputs().size() && Contains(block->outputs()[i])) {
            Mark(node.outputs()[i], RawOrigin(block->outputs()[i]));
          }
        }
      }
      if (node.kind() == c10::prim::If) return;
    }
    const Value* state = FirstState(node.inputs());
    if (state == nullptr) return;
    if (!HasSchemaAliasAnalysis(node)) {
      for (const Value* output : node.outputs()) Mark(output, RawOrigin(state));
      return;
    }
    const c10::FunctionSchema& schema = *node.maybeSchema();
    const auto& arguments = schema.arguments();
    const auto& returns = schema.returns();
    // The first argument that is state and that the schema lets output i alias.
    auto aliased_state = [&](size_t output) -> const Value* {
      const auto returned =
          output < returns.size() ? AliasSets(returns[output].alias_info()) : std::unordered_set<c10::Symbol>{};
      const bool unknown = output >= returns.size();  // varret
      for (size_t i = 0; i < node.inputs().size(); ++i) {
        if (!Contains(node.inputs()[i])) continue;
        if (unknown || i >= arguments.size() || MayAlias(returned, arguments[i].alias_info())) {
          return node.inputs()[i];
        }
      }
      return nullptr;
    };
    for (size_t i = 0; i < node.outputs().size(); ++i) {
      if (const Value* source = aliased_state(i)) Mark(node.outputs()[i], RawOrigin(source));
    }
    for (size_t i = 0; i < node.inputs().size() && i < arguments.size(); ++i) {
      const c10::AliasInfo* alias = arguments[i].alias_info();
      const Value* input = node.inputs()[i];
      // A write copies into a tensor but may store state into a container.
      if (alias != nullptr && alias->isWrite() && input->type()->kind() != c10::TypeKind::TensorType) {
        Mark(input, RawOrigin(state));
      }
    }
  }

  std::unordered_map<const Value*, std::string> origin_;
  bool changed_ = false;
};

// prim::SetAttr on module state, and operators whose schema writes to an argument that may be
// module state.
std::vector<StateMutation> FindMutations(const Graph& graph) {
  const StateValues state(graph);
  std::vector<StateMutation> mutations;
  ForEachNode(*graph.block(), true, [&](const Node& node, bool /*top_level*/) {
    if (node.kind() == c10::prim::SetAttr) {
      if (!node.inputs().empty() && state.Contains(node.inputs()[0])) {
        mutations.push_back({node.kind().toQualString(),
                             StateValues::Join(state.RawOrigin(node.inputs()[0]), node.s(c10::attr::name)),
                             Location(node)});
      }
      return;
    }
    const c10::FunctionSchema* schema = node.maybeSchema();
    if (schema == nullptr || !schema->is_mutable()) return;
    const auto& arguments = schema->arguments();
    for (size_t i = 0; i < node.inputs().size() && i < arguments.size(); ++i) {
      const c10::AliasInfo* alias = arguments[i].alias_info();
      if (alias == nullptr || !alias->isWrite() || !state.Contains(node.inputs()[i])) continue;
      mutations.push_back({node.kind().toQualString(), state.Origin(node.inputs()[i]), Location(node)});
    }
  });
  return mutations;
}

ForwardInfo DescribeForward(const torch::jit::Module& module, const torch::jit::Method& forward) {
  std::shared_ptr<Graph> graph = forward.graph()->copy();
  torch::jit::Inline(*graph);

  ForwardInfo info;
  std::map<std::string, OperatorUse> uses;
  ForEachNode(*graph->block(), true, [&](const Node& node, bool top_level) {
    const std::string kind = node.kind().toQualString();
    OperatorUse& use = uses[kind];
    use.kind = kind;
    ++use.count;
    if (top_level) ++use.unconditional;
    if (use.locations.size() < kMaxLocations) {
      std::string location = Location(node);
      if (!location.empty() && std::find(use.locations.begin(), use.locations.end(), location) == use.locations.end()) {
        use.locations.push_back(std::move(location));
      }
    }
    if (node.kind() == c10::prim::Constant && node.outputs().size() == 1 &&
        node.output()->type()->kind() == c10::TypeKind::TensorType) {
      const auto constant = torch::jit::toIValue(node.output());
      if (constant && constant->isTensor()) {
        const at::Tensor& tensor = constant->toTensor();
        CheckTensorBounds("constant of forward at " + Location(node), tensor);
        ++info.tensor_constants;
        info.tensor_constant_elements += tensor.defined() ? tensor.numel() : 0;
      }
    }
    if (UsesBatchStatistics(node)) info.batch_norm_training = true;
  });
  // The nodes left once the branches that cannot run in training are resolved, as the engine does.
  std::shared_ptr<Graph> trained = graph->copy();
  dp::FoldKnownBranches(trained, dp::EngineFacts(module, trained->inputs()[0], /*training=*/true, {}));
  ForEachNode(*trained->block(), true, [&](const Node& node, bool /*top_level*/) {
    const auto found = uses.find(node.kind().toQualString());
    if (found != uses.end()) ++found->second.in_training;
  });
  for (auto& entry : uses) info.operators.push_back(std::move(entry.second));
  info.mutations = FindMutations(*graph);
  const int64_t inputs = static_cast<int64_t>(graph->inputs().size());
  info.inputs = inputs > 0 ? inputs - 1 : 0;  // input 0 is self
  info.graph_json = GraphToJson(*graph, module._ivalue());
  return info;
}

// The reason a tensor cannot be copied out as plain bytes, or empty.
std::string UnextractableReason(const at::Tensor& tensor) {
  if (!tensor.defined()) return "is undefined";
  if (!tensor.device().is_cpu()) return "is not on the CPU";
  if (tensor.layout() != c10::kStrided) return "is not a dense (strided) tensor";
  if (tensor.is_quantized()) return "is quantized";
  if (!tensor.has_storage()) return "has no storage";
  return {};
}

}  // namespace

torch::jit::Module LoadModule(std::string bytes) { return Load(std::move(bytes)); }

ModelInfo InspectModel(std::string bytes) {
  const torch::jit::Module module = Load(std::move(bytes));

  ModelInfo info;
  for (const torch::jit::Method& method : module.get_methods()) info.methods.push_back(method.name());
  std::sort(info.methods.begin(), info.methods.end());

  for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
    info.parameters.push_back(DescribeTensor(parameter.name, parameter.value));
  }
  for (const auto& buffer : module.named_buffers(/*recurse=*/true)) {
    info.buffers.push_back(DescribeTensor(buffer.name, buffer.value));
  }
  if (const auto forward = module.find_method("forward")) info.forward = DescribeForward(module, *forward);
  info.training = module.is_training();
  return info;
}

std::vector<TensorData> ExtractTensors(std::string bytes, int64_t max_bytes) {
  const torch::jit::Module module = Load(std::move(bytes));

  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
    tensors.emplace_back(parameter.name, parameter.value);
  }
  for (const auto& buffer : module.named_buffers(/*recurse=*/true)) {
    tensors.emplace_back(buffer.name, buffer.value);
  }

  int64_t total = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::string reason = UnextractableReason(tensor);
    if (!reason.empty()) RefuseTensor(name, reason);
    CheckTensorBounds(name, tensor);  // Load checked it; cheap, and keeps the copy below safe here
    int64_t size = 0;
    if (__builtin_mul_overflow(tensor.numel(), static_cast<int64_t>(tensor.dtype().itemsize()), &size) ||
        __builtin_add_overflow(total, size, &total) || total > max_bytes) {
      throw Error(ErrorCode::kModelLoadFailed,
                  "The archive's tensors hold more than the limit of " + std::to_string(max_bytes) + " bytes");
    }
  }

  std::vector<TensorData> result;
  result.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    TensorData data;
    data.name = name;
    data.dtype = DtypeName(tensor.scalar_type());
    const auto sizes = tensor.sizes();
    data.shape.assign(sizes.begin(), sizes.end());
    const at::Tensor dense = tensor.detach().contiguous();
    if (dense.nbytes() > 0) data.bytes.assign(static_cast<const char*>(dense.data_ptr()), dense.nbytes());
    result.push_back(std::move(data));
  }
  return result;
}

std::string SourceLocation(const torch::jit::Node& node) {
  const auto place = node.sourceRange().file_line_col();
  if (!place) return {};
  const auto& [file, line, column] = *place;
  if (file.empty()) return {};
  return file + ":" + std::to_string(line);
}

}  // namespace bastion::core
