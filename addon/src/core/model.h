// Inspection of a TorchScript archive held in memory: methods, parameters, buffers and the operators
// of the inlined forward graph. Torch-free interface so the N-API side can include it.
#ifndef BASTION_CORE_MODEL_H_
#define BASTION_CORE_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bastion::core {

struct TensorInfo {
  std::string name;            // qualified, e.g. "0.weight"
  std::vector<int64_t> shape;
  std::string dtype;           // torch's name: "float32", "int64", ...
  bool requires_grad = false;  // meaningful for parameters only
};

struct OperatorCount {
  std::string kind;  // e.g. "aten::conv2d"
  int64_t count = 0;
};

struct ForwardInfo {
  std::vector<OperatorCount> operators;  // every node kind, nested blocks included, sorted by kind
  int64_t inputs = 0;                    // graph inputs excluding self
};

struct ModelInfo {
  std::vector<std::string> methods;     // the module's own methods, sorted
  std::vector<TensorInfo> parameters;   // named_parameters(recurse=true) order
  std::vector<TensorInfo> buffers;      // named_buffers(recurse=true) order
  std::optional<ForwardInfo> forward;   // empty when the module has no forward
  bool training = false;
};

// Loads the archive on the CPU and describes it without running it. Throws Error(kModelLoadFailed)
// with the libtorch failure nested when the bytes are not a loadable TorchScript archive.
// Loading runs code from the archive (__setstate__): callers pre-check untrusted files first.
ModelInfo InspectModel(std::string bytes);

}  // namespace bastion::core

#endif  // BASTION_CORE_MODEL_H_
