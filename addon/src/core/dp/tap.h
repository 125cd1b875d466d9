// Taps: an identity operator the engine puts after each layer's output z in its capture graph, whose
// backward hands δ = ∂L/∂z to the engine as autograd computes it, then passes δ on unchanged. The engine
// takes each layer's norms there, while its activations are still in cache, and lets go of them;
// asking autograd for every δ at once instead kept all of them, and all captured activations, until the
// last layer's backward ran.
#ifndef BASTION_CORE_DP_TAP_H_
#define BASTION_CORE_DP_TAP_H_

#include <cstdint>
#include <functional>

#include <ATen/core/Tensor.h>

namespace bastion::core::dp {

// bastion::tap(Tensor z, Tensor key, int sink, int which) -> Tensor: z itself (as a view, so that it
// gets a node of its own). Its backward calls the receiver of `sink`, when one listens, with `which`
// and the incoming gradient. key is a leaf that requires grad: asking autograd for key's gradient runs
// the backward of every tap the loss depends on. Registered when the addon loads; models cannot name
// it (the upload allowlist does not list it).
inline constexpr const char* kTapOperator = "bastion::tap";

// One engine's taps. Receivers run on the thread that runs the backward (autograd runs CPU work on the
// caller's thread) and must not throw: Listen's caller collects errors itself.
class TapSink {
 public:
  using Receiver = std::function<void(int64_t which, const at::Tensor& grad)>;
  TapSink();
  ~TapSink();
  TapSink(const TapSink&) = delete;
  TapSink& operator=(const TapSink&) = delete;
  int64_t id() const { return id_; }

  // While the returned object lives, gradients at this sink's taps go to receiver; otherwise they pass
  // through unseen (the probes' own backward passes).
  class Listening {
   public:
    explicit Listening(int64_t id) : id_(id) {}
    ~Listening();
    Listening(const Listening&) = delete;
    Listening& operator=(const Listening&) = delete;

   private:
    int64_t id_;
  };
  [[nodiscard]] Listening Listen(Receiver receiver) const;

 private:
  int64_t id_;
};

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_TAP_H_
