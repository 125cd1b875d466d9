#include "core/dtype.h"

namespace bastion::core {
namespace {

struct Dtype {
  const char* name;
  c10::ScalarType type;
};

constexpr Dtype kDtypes[] = {
    {"F64", c10::kDouble}, {"F32", c10::kFloat}, {"F16", c10::kHalf}, {"BF16", c10::kBFloat16}, {"I64", c10::kLong},
    {"I32", c10::kInt},    {"I16", c10::kShort}, {"I8", c10::kChar},  {"U8", c10::kByte},       {"BOOL", c10::kBool},
};

}  // namespace

std::optional<c10::ScalarType> ParseDtype(const std::string& name) {
  for (const Dtype& entry : kDtypes) {
    if (name == entry.name) return entry.type;
  }
  return std::nullopt;
}

std::string DtypeName(c10::ScalarType type) {
  for (const Dtype& entry : kDtypes) {
    if (type == entry.type) return entry.name;
  }
  return c10::toString(type);
}

const std::string& DtypeNames() {
  static const std::string names = [] {
    std::string out;
    for (const Dtype& entry : kDtypes) out += (out.empty() ? "" : ", ") + std::string(entry.name);
    return out;
  }();
  return names;
}

}  // namespace bastion::core
