// Inspection of a TorchScript archive held in memory: methods, parameters, buffers and what the
// inlined forward graph does (its operators and where they run, writes to module state, constants
// holding weights, BatchNorm in training mode), so that a policy can be decided outside libtorch;
// and extraction of a module's tensors (TorchScript datasets). Torch-free interface so the N-API
// side can include it.
#ifndef BASTION_CORE_MODEL_H_
#define BASTION_CORE_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace torch::jit {
struct Module;
struct Node;
}  // namespace torch::jit

namespace bastion::core {

struct TensorInfo {
  std::string name;  // qualified, e.g. "0.weight"
  std::vector<int64_t> shape;
  std::string dtype;           // core/dtype.h's name: "F32", "I64", ... (c10::toString outside its list)
  bool requires_grad = false;  // meaningful for parameters only
  // A dense (strided) tensor with the contiguous strides of its shape: no zero, overlapping or
  // permuted strides. Meaningful for parameters only.
  bool contiguous = false;
};

// One node kind of the inlined forward graph.
struct OperatorUse {
  std::string kind;           // e.g. "aten::conv2d"
  int64_t count = 0;          // nodes of this kind, nested blocks included
  int64_t unconditional = 0;  // of which on the graph's top-level block (not in If/Loop)
  // Of count, those left once the branches that cannot run in training (training mode, autograd
  // on: core/dp/branch_folding.h) are resolved and what they prove constant is folded; 0..count.
  int64_t in_training = 0;
  std::vector<std::string> locations;  // up to kMaxLocations distinct "file:line", in graph order
};

// A node that writes to module state: a prim::SetAttr, or an operator whose schema writes to an
// argument that may alias a parameter, buffer or attribute of the module.
struct StateMutation {
  std::string kind;       // e.g. "aten::add_" or "prim::SetAttr"
  std::string attribute;  // qualified name of the state written, e.g. "bn.running_mean"
  std::string location;   // "file:line", empty when unknown
};

struct ForwardInfo {
  std::vector<OperatorUse> operators;    // every node kind, sorted by kind
  int64_t inputs = 0;                    // graph inputs excluding self
  std::vector<StateMutation> mutations;  // in graph order
  int64_t tensor_constants = 0;          // tensor-valued prim::Constant nodes
  int64_t tensor_constant_elements = 0;  // their elements in total
  // A batch_norm-family node whose `training` input is not the constant false, or an
  // instance_norm with running statistics whose `use_input_stats` is not the constant false:
  // both update buffers from the batch and mix samples.
  bool batch_norm_training = false;
  // The inlined forward graph as JSON, for the batch-independence and control-flow analysis done in
  // TypeScript (src/artifacts/batch-analysis.ts documents the format). Attribute reads from the
  // module are resolved: tensors carry their shape, scalars and lists of scalars their value.
  std::string graph_json;
};

struct ModelInfo {
  std::vector<std::string> methods;    // the module's own methods, sorted
  std::vector<TensorInfo> parameters;  // named_parameters(recurse=true) order
  std::vector<TensorInfo> buffers;     // named_buffers(recurse=true) order
  std::optional<ForwardInfo> forward;  // empty when the module has no forward
  bool training = false;
};

// Locations kept per operator kind.
inline constexpr size_t kMaxLocations = 3;

// Loads the archive on the CPU and describes it without running it. Throws Error(kModelLoadFailed)
// with the libtorch failure nested when the bytes are not a loadable TorchScript archive, or when a
// tensor of the module or of its forward graph claims more elements than its storage holds.
// Loading runs code from the archive (__setstate__): callers pre-check untrusted files first.
// Only forward is analysed (inlined): it is the one method the trainer calls.
ModelInfo InspectModel(std::string bytes);

struct TensorData {
  std::string name;   // qualified, e.g. "samples_0"
  std::string dtype;  // as TensorInfo::dtype
  std::vector<int64_t> shape;
  std::string bytes;  // the elements, contiguous, row-major, little-endian
};

// Loads the archive like InspectModel and copies out every parameter (named_parameters order), then
// every buffer (named_buffers order), recursively. Throws Error(kModelLoadFailed) when the archive
// does not load, when a tensor is not a dense CPU tensor with a plain dtype (sparse, quantized,
// MKL-DNN, undefined), when it claims more elements than its storage holds, or when the tensors hold
// more than max_bytes in total (checked before anything is copied).
std::vector<TensorData> ExtractTensors(std::string bytes, int64_t max_bytes);

// Loads the archive on the CPU with the same checks as InspectModel (archive pre-check, every tensor
// inside its storage) and returns the module, for the trainer. Throws Error(kModelLoadFailed) as
// InspectModel. Callers that use the result include <torch/script.h>.
torch::jit::Module LoadModule(std::string bytes);

// Where a graph node comes from in the archive's serialized source, as "file:line" (e.g.
// "code/__torch__/torch/nn/modules/linear.py:12"), or empty when unknown. For messages and reports.
std::string SourceLocation(const torch::jit::Node& node);

}  // namespace bastion::core

#endif  // BASTION_CORE_MODEL_H_
