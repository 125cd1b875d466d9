// The error type core code throws for failures it can name; binding/guard.cc maps each code to a
// stable JS string. Torch-free so the N-API side can include it.
#ifndef BASTION_CORE_ERROR_H_
#define BASTION_CORE_ERROR_H_

#include <stdexcept>
#include <string>

namespace bastion::core {

enum class ErrorCode {
  kInvalidArgument,
  kModelLoadFailed,
  // A training step met a NaN or infinite loss, gradient or parameter; the step was undone.
  kNonFinite,
};

// May carry a nested exception (std::throw_with_nested) whose first line the guard appends.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// Refuses what the caller handed in (an argument, a config, data, a model that cannot work):
// throws Error(kInvalidArgument) with the message.
[[noreturn]] inline void Refuse(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, message); }

}  // namespace bastion::core

#endif  // BASTION_CORE_ERROR_H_
