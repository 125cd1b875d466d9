// Element types by their safetensors names ("F32", "I64", ...): the one naming scheme for dtypes
// across the addon boundary, in both directions (src/vocabulary.ts's DTYPES is the same list). A type
// safetensors datasets do not use is reported by libtorch's own name (c10::toString) and never parsed.
#ifndef BASTION_CORE_DTYPE_H_
#define BASTION_CORE_DTYPE_H_

#include <optional>
#include <string>

#include <c10/core/ScalarType.h>

namespace bastion::core {

// The type of a name in the list, or nullopt.
std::optional<c10::ScalarType> ParseDtype(const std::string& name);

// The name of a type: from the list, else c10::toString ("ComplexFloat", "QInt8", ...).
std::string DtypeName(c10::ScalarType type);

// "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL", for messages.
const std::string& DtypeNames();

}  // namespace bastion::core

#endif  // BASTION_CORE_DTYPE_H_
