// The rule for recurrent layers (nn.LSTM, nn.GRU, nn.RNN: aten::lstm, gru, rnn_tanh, rnn_relu). A
// recurrent node cannot be split into (a, z) pairs the way a linear layer can: its weights act at every
// time step, on states the node computes itself. So the engine replaces the node, in its own copy of
// the graph, by bastion::dp_rnn: the same recurrence written out (ATen's matrix products, and each
// step's pointwise work fused in rnn_steps.cc, float32 and float64), with a backward through time
// of its own that, besides the gradients autograd asks for, leaves on a tape what per-sample gradients
// need: for each layer and direction the layer's input x, the states h_{t-1} the step read, and the
// gradients of the gate pre-activations (from the input and from the state, which differ for the GRU).
// Then, for sample i, g(W_ih) = Σ_t δgi_{i,t} ⊗ x_{i,t}, g(W_hh) = Σ_t δgh_{i,t} ⊗ h_{i,t-1}, and the
// biases take Σ_t δgi_{i,t} and Σ_t δgh_{i,t}: exact, from the one backward the step runs anyway.
//
// Not covered (the engine leaves such nodes to the batch-of-one fallback): dropout between layers in
// training (its masks are drawn inside the fused kernel), LSTM projections (proj_size), packed sequences.
#ifndef BASTION_CORE_DP_GRAD_SAMPLE_RECURRENT_H_
#define BASTION_CORE_DP_GRAD_SAMPLE_RECURRENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {

enum class RnnMode : int64_t { kLstm = 0, kGru = 1, kRnnTanh = 2, kRnnRelu = 3 };

struct RnnConfig {
  RnnMode mode = RnnMode::kLstm;
  bool has_biases = true;
  int64_t num_layers = 1;
  bool bidirectional = false;
  bool batch_first = false;
};

// The rule name of a mode ("lstm", "gru", "rnn_tanh", "rnn_relu").
std::string RnnRuleName(RnnMode mode);

// What one backward of a dp_rnn node leaves for its rule, per layer-direction k = layer · directions +
// direction, all batch-first: x [B, T, I], h_{t-1} [B, T, H], δgi and δgh [B, T, G].
struct RnnTape {
  int64_t batch = 0;
  std::vector<at::Tensor> inputs, previous, d_input_gates, d_hidden_gates;
};

// A tape for one engine's node; released when the engine drops its last reference.
class RnnTapeHandle {
 public:
  RnnTapeHandle();
  ~RnnTapeHandle();
  RnnTapeHandle(const RnnTapeHandle&) = delete;
  RnnTapeHandle& operator=(const RnnTapeHandle&) = delete;
  int64_t id() const { return id_; }
  // The tape's contents since the last Take(), which empties it.
  RnnTape Take();

 private:
  int64_t id_;
};

// The operator the engine puts in place of the node, registered when the addon loads:
// bastion::dp_rnn(Tensor input, Tensor[] hx, Tensor[] params, int mode, bool has_biases, int num_layers,
// bool bidirectional, bool batch_first, int tape) -> (Tensor, Tensor, Tensor), aten::lstm's arguments
// less dropout and train; the third output is c_n for an LSTM and an empty tensor otherwise. tape < 0:
// no tape is written. Models cannot name it: the upload allowlist does not list it.
inline constexpr const char* kDpRnnOperator = "bastion::dp_rnn";

// The layer of one rewritten node. flat[s]: the position of slot s's parameter in aten::lstm's flat
// weight list (per layer and direction: w_ih, w_hh, then b_ih, b_hh when it has biases). Prepare
// ignores a and delta and reads the node's tape.
std::unique_ptr<Layer> MakeRecurrentLayer(const RnnConfig& config, std::shared_ptr<RnnTapeHandle> tape,
                                          std::vector<Slot> slots, std::vector<size_t> flat);

}  // namespace bastion::core::dp::grad_sample

#endif  // BASTION_CORE_DP_GRAD_SAMPLE_RECURRENT_H_
