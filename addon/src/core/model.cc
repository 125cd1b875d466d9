// Loads TorchScript archives from memory and reports their structure; the only TU that parses them.
#include "core/model.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <utility>

#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/script.h>

#include "core/archive_check.h"
#include "core/error.h"

namespace bastion::core {
namespace {

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

torch::jit::Module Load(std::string bytes) {
  try {
    auto archive = std::make_shared<ByteReader>(std::move(bytes));
    CheckArchive(archive);
    // The ReadAdapter overload accepts only the zip format; the istream overload would also hand
    // the bytes to the flatbuffer (mobile) loader.
    return torch::jit::load(archive, c10::Device(c10::kCPU));
  } catch (const std::bad_alloc&) {
    throw;
  } catch (...) {
    std::throw_with_nested(Error(ErrorCode::kModelLoadFailed, "Cannot load the TorchScript archive"));
  }
}

std::string DtypeName(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return "float32";
    case c10::kDouble: return "float64";
    case c10::kHalf: return "float16";
    case c10::kBFloat16: return "bfloat16";
    case c10::kComplexHalf: return "complex32";
    case c10::kComplexFloat: return "complex64";
    case c10::kComplexDouble: return "complex128";
    case c10::kByte: return "uint8";
    case c10::kChar: return "int8";
    case c10::kShort: return "int16";
    case c10::kInt: return "int32";
    case c10::kLong: return "int64";
    case c10::kBool: return "bool";
    case c10::kQInt8: return "qint8";
    case c10::kQUInt8: return "quint8";
    case c10::kQInt32: return "qint32";
    case c10::kQUInt4x2: return "quint4x2";
    case c10::kQUInt2x4: return "quint2x4";
    default: return c10::toString(type);
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
  return info;
}

void CountNodes(const torch::jit::Block& block, std::map<std::string, int64_t>& counts) {
  for (const torch::jit::Node* node : block.nodes()) {
    ++counts[node->kind().toQualString()];
    for (const torch::jit::Block* nested : node->blocks()) CountNodes(*nested, counts);
  }
}

ForwardInfo DescribeForward(const torch::jit::Method& forward) {
  std::shared_ptr<torch::jit::Graph> graph = forward.graph()->copy();
  torch::jit::Inline(*graph);
  std::map<std::string, int64_t> counts;
  CountNodes(*graph->block(), counts);

  ForwardInfo info;
  for (auto& [kind, count] : counts) info.operators.push_back({kind, count});
  const int64_t inputs = static_cast<int64_t>(graph->inputs().size());
  info.inputs = inputs > 0 ? inputs - 1 : 0;  // input 0 is self
  return info;
}

}  // namespace

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
  if (const auto forward = module.find_method("forward")) info.forward = DescribeForward(*forward);
  info.training = module.is_training();
  return info;
}

}  // namespace bastion::core
