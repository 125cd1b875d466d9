#include "core/dp/tap.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace bastion::core::dp {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::mutex sinks_mutex;
// Sink id -> its receiver (null while none listens).
std::unordered_map<int64_t, std::shared_ptr<const TapSink::Receiver>>& Sinks() {
  static auto* sinks = new std::unordered_map<int64_t, std::shared_ptr<const TapSink::Receiver>>();
  return *sinks;
}
std::atomic<int64_t> next_sink{0};

void SetReceiver(int64_t id, std::shared_ptr<const TapSink::Receiver> receiver) {
  const std::lock_guard<std::mutex> lock(sinks_mutex);
  const auto found = Sinks().find(id);
  if (found != Sinks().end()) found->second = std::move(receiver);
}

class TapFunction : public torch::autograd::Function<TapFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& z, const at::Tensor& /*key*/, int64_t sink,
                            int64_t which) {
    ctx->saved_data["sink"] = sink;
    ctx->saved_data["which"] = which;
    return z;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    std::shared_ptr<const TapSink::Receiver> receiver;
    {
      const std::lock_guard<std::mutex> lock(sinks_mutex);
      const auto found = Sinks().find(ctx->saved_data["sink"].toInt());
      if (found != Sinks().end()) receiver = found->second;
    }
    if (receiver) (*receiver)(ctx->saved_data["which"].toInt(), grads[0]);
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor Tap(const at::Tensor& z, const at::Tensor& key, int64_t sink, int64_t which) {
  return TapFunction::apply(z, key, sink, which);
}

}  // namespace

TapSink::TapSink() : id_(next_sink.fetch_add(1)) {
  const std::lock_guard<std::mutex> lock(sinks_mutex);
  Sinks().emplace(id_, nullptr);
}

TapSink::~TapSink() {
  const std::lock_guard<std::mutex> lock(sinks_mutex);
  Sinks().erase(id_);
}

TapSink::Listening TapSink::Listen(Receiver receiver) const {
  SetReceiver(id_, std::make_shared<const Receiver>(std::move(receiver)));
  return Listening(id_);
}

TapSink::Listening::~Listening() { SetReceiver(id_, nullptr); }

}  // namespace bastion::core::dp

TORCH_LIBRARY_FRAGMENT(bastion, m) {
  m.def("tap(Tensor z, Tensor key, int sink, int which) -> Tensor",
        torch::dispatch(c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(bastion::core::dp::Tap)));
}
