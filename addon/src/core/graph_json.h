// The inlined forward graph of a module as JSON, for analyses written in TypeScript (batch
// independence and data-to-control flow, src/artifacts/batch-analysis.ts, which documents the
// format). Only structure, types, constants and the module's own attribute values are written:
// never anything of a dataset.
#ifndef BASTION_CORE_GRAPH_JSON_H_
#define BASTION_CORE_GRAPH_JSON_H_

#include <string>

namespace c10 {
struct IValue;
}  // namespace c10

namespace torch::jit {
struct Graph;
}  // namespace torch::jit

namespace bastion::core {

// Writes `graph` (already inlined; input 0 is self) as JSON. prim::GetAttr chains from self are
// resolved against `self`: a tensor attribute gets its shape ("shape"), an int, float, bool, string,
// None or list of those its value ("value"). Node and value counts are bounded by the graph.
std::string GraphToJson(const torch::jit::Graph& graph, const c10::IValue& self);

}  // namespace bastion::core

#endif  // BASTION_CORE_GRAPH_JSON_H_
