// The per-sample gradient rules: one Layer per matched graph node (a Linear, a convolution, an
// embedding, a normalisation), which turns the node's input activation a and the gradient δ = ∂L/∂z of
// the loss sum with respect to its output z into per-sample gradients g_i of the node's parameters,
// their squared norms and their weighted sum Σ_i c_i g_i. Every path a Layer offers (materialised,
// ghost norm with book-keeping sum) gives the numbers of materialising g_i: the engine may pick any.
// Rules see nodes through OpView (inputs already resolved to constants or parameters), so this
// header and the rule TUs need ATen only, not the JIT IR.
#ifndef BASTION_CORE_DP_GRAD_SAMPLE_LAYER_H_
#define BASTION_CORE_DP_GRAD_SAMPLE_LAYER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

namespace bastion::core::dp::grad_sample {

// One input of a graph node as the analysis resolved it.
struct OpArg {
  enum class Kind {
    kTensor,     // a tensor computed by the graph (an activation)
    kParameter,  // a trainable parameter of the module
    kState,      // a tensor of the module that is not trained (frozen parameter, buffer)
    kConstant,   // a constant (prim::Constant, a list of constants, a non-tensor attribute)
    kUnknown,    // anything else (computed ints, lists of tensors, ...)
  };
  Kind kind = Kind::kUnknown;
  c10::IValue constant;        // kConstant
  int64_t parameter = -1;      // kParameter: index into the trainable parameters
  std::vector<int64_t> shape;  // kParameter, kState: the tensor's shape (empty for a row slice)
  bool row_slice = false;      // kParameter: a slice of the parameter's rows, located at run time
};

// A node of the inlined forward graph, e.g. kind "aten::linear" with its inputs.
struct OpView {
  std::string kind;
  std::vector<OpArg> args;
};

// A trainable parameter a Layer computes per-sample gradients for, and the node input it enters by.
struct Slot {
  size_t arg = 0;
  int64_t parameter = -1;
  std::vector<int64_t> shape;
  bool row_slice = false;  // the node reads a slice of the parameter's rows (OpArg::row_slice)
};

enum class Path {
  kMaterialize,  // per-sample gradients [B, *shape], then their norms and weighted sum
  kGhost,        // norms without materialising (Gram / sparse forms), weighted sum as one product
};

// One batch's work for one layer; created by Layer::Prepare.
class LayerBatch {
 public:
  virtual ~LayerBatch() = default;
  // g_i for slot s: [B, *shape], a tensor the caller may keep.
  virtual at::Tensor PerSample(size_t slot) = 0;
  // ||g_i||² for slot s: [B]. Default: from PerSample (computed once for both defaults).
  virtual at::Tensor NormSquared(size_t slot);
  // Σ_i factors_i g_i for slot s, shaped as the parameter; factors is [B]. Default: from PerSample.
  virtual at::Tensor WeightedSum(size_t slot, const at::Tensor& factors);

  // Memory, in bytes, that the batches of one engine run (one physical batch) may still spend beyond
  // what they hold anyway, to save time (a convolution keeping per-sample gradients larger than the
  // input and output gradient they replace); one budget shared by the run's layers, which the engine
  // sets. Null: nothing to spend.
  std::shared_ptr<int64_t> spare_bytes;

 protected:
  // PerSample(slot), computed at most once per batch.
  const at::Tensor& CachedPerSample(size_t slot);

 private:
  std::vector<at::Tensor> per_sample_cache_;
};

class Layer {
 public:
  virtual ~Layer() = default;
  // "linear", "conv2d", ...
  virtual std::string Rule() const = 0;
  // Whether the node computes each position of a leading dimension alone, so that a batch found in
  // any dimension of a and z (the engine moves it first before Prepare) gives the same rule.
  virtual bool AnyBatchDim() const { return false; }
  // Whether Path::kGhost is a distinct, cheaper-for-some-shapes path.
  virtual bool HasGhost() const { return false; }
  // Estimated multiply-adds of a path for this batch (a and delta as Prepare receives them).
  virtual double Cost(Path path, const at::Tensor& a, const at::Tensor& delta) const;
  // Checks the shapes (batch first) and prepares the path's work. Throws std::runtime_error when a
  // or delta do not have the shapes this node can produce.
  virtual std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path path) const = 0;

  size_t activation_arg = 0;  // the node input that is a (its output 0 is z)
  std::vector<Slot> slots;
};

// What a rule makes of a node: a layer, or the reason it cannot cover it (the node's parameters then
// go to the batch-of-one fallback). Neither when the node has no trainable parameter to cover.
struct MatchResult {
  std::unique_ptr<Layer> layer;
  std::string reason;
};

using Matcher = MatchResult (*)(const OpView& op);

// The rule for a node kind, or nullptr.
Matcher FindRule(const std::string& kind);

// The rules (one TU per family).
MatchResult MatchLinear(const OpView& op);       // aten::linear
MatchResult MatchConvolution(const OpView& op);  // aten::conv1d, conv2d, _convolution, convolution
MatchResult MatchEmbedding(const OpView& op);    // aten::embedding
MatchResult MatchLayerNorm(const OpView& op);    // aten::layer_norm
MatchResult MatchGroupNorm(const OpView& op);    // aten::group_norm
MatchResult MatchElementwise(const OpView& op);  // aten::add, aten::sub, aten::mul of a parameter

// Helpers for rules: constants of OpArgs.
std::optional<int64_t> ConstantInt(const OpArg& arg);
std::optional<bool> ConstantBool(const OpArg& arg);
std::optional<double> ConstantDouble(const OpArg& arg);
std::optional<std::vector<int64_t>> ConstantInts(const OpArg& arg);
bool IsNone(const OpArg& arg);
void AddSlotIfParameter(Layer& layer, const OpView& op, size_t index);

// A LayerBatch that materialises every slot's g_i once, from a function of the rule.
class MaterializedBatch : public LayerBatch {
 public:
  explicit MaterializedBatch(std::vector<at::Tensor> per_sample) : per_sample_(std::move(per_sample)) {}
  at::Tensor PerSample(size_t slot) override { return per_sample_.at(slot); }

 private:
  std::vector<at::Tensor> per_sample_;
};

// Throws std::runtime_error("<rule>: <message>").
[[noreturn]] void ShapeError(const std::string& rule, const std::string& message);

}  // namespace bastion::core::dp::grad_sample

#endif  // BASTION_CORE_DP_GRAD_SAMPLE_LAYER_H_
