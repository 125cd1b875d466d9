// Serialises an inlined TorchScript graph to JSON (see graph_json.h). Hand-written because the
// format is small and the addon links no JSON library: strings are escaped per RFC 8259, numbers
// that JSON cannot hold (NaN, ±infinity) become strings, and recursion follows the graph's block
// nesting only (bounded by what the TorchScript compiler produced).
#include "core/graph_json.h"

#include <cmath>
#include <cstdio>
#include <unordered_map>

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>

#include "core/model.h"

namespace bastion::core {
namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// Constant tensors with at most this many elements have their values written.
constexpr int64_t kMaxConstantValues = 16;

void AppendString(std::string& out, const std::string& text) {
  out += '"';
  for (const unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void AppendDouble(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "\"nan\"";
  } else if (std::isinf(value)) {
    out += value > 0 ? "\"inf\"" : "\"-inf\"";
  } else {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", value);
    out += text;
  }
}

// A constant or attribute value: null, bool, number, string, list of those, {"tensor": shape},
// or {"other": tag} for anything else. Nested lists are written as nested arrays.
void AppendIValue(std::string& out, const c10::IValue& value, int depth = 0) {
  if (value.isNone()) {
    out += "null";
  } else if (value.isBool()) {
    out += value.toBool() ? "true" : "false";
  } else if (value.isInt()) {
    out += std::to_string(value.toInt());
  } else if (value.isDouble()) {
    AppendDouble(out, value.toDouble());
  } else if (value.isString()) {
    AppendString(out, value.toStringRef());
  } else if (value.isTensor()) {
    const at::Tensor& tensor = value.toTensor();
    out += "{\"tensor\":[";
    if (tensor.defined()) {
      for (int64_t d = 0; d < tensor.dim(); ++d) out += (d ? "," : "") + std::to_string(tensor.size(d));
    }
    out += ']';
    // The values of small constants (traced shape arithmetic bakes sizes and head counts into
    // 0-dim tensors); the model's own values, never a dataset's.
    if (tensor.defined() && tensor.layout() == c10::kStrided && tensor.numel() <= kMaxConstantValues &&
        (c10::isIntegralType(tensor.scalar_type(), /*includeBool=*/false) ||
         c10::isFloatingType(tensor.scalar_type()))) {
      const at::Tensor flat = tensor.detach().to(at::kDouble).contiguous().reshape({-1});
      const double* values = flat.data_ptr<double>();
      out += ",\"values\":[";
      for (int64_t i = 0; i < flat.numel(); ++i) {
        if (i) out += ',';
        AppendDouble(out, values[i]);
      }
      out += ']';
    }
    out += '}';
  } else if (value.isList() && depth < 4) {
    out += '[';
    const auto list = value.toListRef();
    for (size_t i = 0; i < list.size(); ++i) {
      if (i) out += ',';
      AppendIValue(out, list[i], depth + 1);
    }
    out += ']';
  } else if (value.isTuple() && depth < 4) {
    out += '[';
    const auto& elements = value.toTupleRef().elements();
    for (size_t i = 0; i < elements.size(); ++i) {
      if (i) out += ',';
      AppendIValue(out, elements[i], depth + 1);
    }
    out += ']';
  } else if (value.isDevice()) {
    out += "{\"device\":";
    AppendString(out, value.toDevice().str());
    out += '}';
  } else {
    out += "{\"other\":";
    AppendString(out, value.tagKind());
    out += '}';
  }
}

class Writer {
 public:
  Writer(const Graph& graph, const c10::IValue& self) {
    if (!graph.inputs().empty()) objects_[graph.inputs()[0]] = self;
  }

  std::string Write(const Graph& graph) {
    out_ += "{\"in\":";
    Values(graph.inputs());
    out_ += ",\"nodes\":";
    Nodes(*graph.block());
    out_ += ",\"out\":";
    Ids(graph.outputs());
    out_ += '}';
    return std::move(out_);
  }

 private:
  void Ids(c10::ArrayRef<const Value*> values) {
    out_ += '[';
    for (size_t i = 0; i < values.size(); ++i) out_ += (i ? "," : "") + std::to_string(values[i]->unique());
    out_ += ']';
  }

  // [[id, "type"], ...]
  void Values(c10::ArrayRef<const Value*> values) {
    out_ += '[';
    for (size_t i = 0; i < values.size(); ++i) {
      if (i) out_ += ',';
      out_ += '[' + std::to_string(values[i]->unique()) + ',';
      AppendString(out_, values[i]->type()->annotation_str());
      out_ += ']';
    }
    out_ += ']';
  }

  void Nodes(const Block& block) {
    out_ += '[';
    bool first = true;
    for (const Node* node : block.nodes()) {
      if (!first) out_ += ',';
      first = false;
      NodeJson(*node);
    }
    out_ += ']';
  }

  void NodeJson(const Node& node) {
    out_ += "{\"k\":";
    AppendString(out_, node.kind().toQualString());
    out_ += ",\"in\":";
    Ids(node.inputs());
    out_ += ",\"out\":";
    Values(node.outputs());
    const std::string location = SourceLocation(node);
    if (!location.empty()) {
      out_ += ",\"loc\":";
      AppendString(out_, location);
    }
    if (node.kind() == c10::prim::Constant && node.outputs().size() == 1) {
      const auto constant = torch::jit::toIValue(node.output());
      out_ += ",\"value\":";
      if (constant) {
        AppendIValue(out_, *constant);
      } else {
        out_ += "{\"other\":\"unknown\"}";
      }
    }
    if (node.kind() == c10::prim::GetAttr) {
      const std::string name = node.s(c10::attr::name);
      out_ += ",\"attr\":";
      AppendString(out_, name);
      const auto owner = objects_.find(node.input());
      if (owner != objects_.end() && owner->second.isObject()) {
        const auto object = owner->second.toObject();
        if (const auto slot = object->type()->findAttributeSlot(name)) {
          const c10::IValue& value = object->getSlot(*slot);
          if (value.isObject()) {
            objects_[node.output()] = value;
          } else {
            out_ += ",\"value\":";
            AppendIValue(out_, value);
          }
        }
      }
    }
    if (!node.blocks().empty()) {
      out_ += ",\"blocks\":[";
      for (size_t b = 0; b < node.blocks().size(); ++b) {
        if (b) out_ += ',';
        const Block& block = *node.blocks()[b];
        out_ += "{\"in\":";
        Values(block.inputs());
        out_ += ",\"nodes\":";
        Nodes(block);
        out_ += ",\"out\":";
        Ids(block.outputs());
        out_ += '}';
      }
      out_ += ']';
    }
    out_ += '}';
  }

  std::string out_;
  std::unordered_map<const Value*, c10::IValue> objects_;  // values known to hold a module object
};

}  // namespace

std::string GraphToJson(const Graph& graph, const c10::IValue& self) { return Writer(graph, self).Write(graph); }

}  // namespace bastion::core
