// Maps C++ exceptions to JS errors. It includes only libtorch's two exception headers (about a
// second of compile time), not the tensor or JIT API.
#include "binding/guard.h"

#include <exception>
#include <new>
#include <string>
#include <string_view>

#include <c10/util/Exception.h>
#include <torch/csrc/jit/frontend/error_report.h>

#include "core/error.h"

namespace bastion::binding {
namespace {

// Messages can quote bytes of an uploaded file; keep them short and single-line.
constexpr size_t kMaxMessageBytes = 1024;

struct Failure {
  const char* code;
  std::string message;
};

const char* CodeName(core::ErrorCode code) {
  switch (code) {
    case core::ErrorCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case core::ErrorCode::kModelLoadFailed:
      return "MODEL_LOAD_FAILED";
    case core::ErrorCode::kNonFinite:
      return "NON_FINITE";
  }
  return "NATIVE_ERROR";
}

// The first non-blank line, without the backtrace or source excerpt libtorch appends (and without
// the colon that introduced them).
std::string FirstLine(std::string_view text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return "unknown native error";
  text.remove_prefix(start);
  text = text.substr(0, text.find_first_of("\r\n"));
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.size() > 1 && text.back() == ':') text.remove_suffix(1);
  if (text.size() <= kMaxMessageBytes) return std::string(text);
  size_t cut = kMaxMessageBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
  return std::string(text.substr(0, cut)) + "...";
}

Failure Classify(const std::exception_ptr& error);

std::string NestedMessage(const std::exception& outer) {
  const auto* nested = dynamic_cast<const std::nested_exception*>(&outer);
  if (nested == nullptr || !nested->nested_ptr()) return FirstLine(outer.what());
  return FirstLine(outer.what()) + ": " + Classify(nested->nested_ptr()).message;
}

Failure Classify(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const core::Error& e) {
    return {CodeName(e.code()), NestedMessage(e)};
  } catch (const c10::OutOfMemoryError& e) {
    return {"OUT_OF_MEMORY", FirstLine(e.what_without_backtrace())};
  } catch (const c10::Error& e) {
    return {"TORCH_ERROR", FirstLine(e.what_without_backtrace())};
  } catch (const torch::jit::ErrorReport& e) {
    return {"TORCH_ERROR", FirstLine(e.what())};
  } catch (const std::bad_alloc&) {
    return {"OUT_OF_MEMORY", "Out of memory"};
  } catch (const std::exception& e) {
    return {"NATIVE_ERROR", FirstLine(e.what())};
  } catch (...) {
    return {"NATIVE_ERROR", "unknown native error"};
  }
}

}  // namespace

void ThrowAsJsError(Napi::Env env, const std::exception_ptr& error) {
  const Failure failure = Classify(error);
  Napi::Error js_error = Napi::Error::New(env, failure.message);
  js_error.Value().Set("code", Napi::String::New(env, failure.code));
  throw js_error;
}

Napi::Value Guard(const Napi::CallbackInfo& info, Handler handler) {
  return Guarded(info.Env(), [&] { return handler(info); });
}

}  // namespace bastion::binding
