// See recurrent.h. The forward follows ATen's CPU recurrences (aten/src/ATen/native/RNN.cpp: the input
// projection of every step at once, then one matmul and the cell's pointwise ops per step; gate order
// i, f, g, o for the LSTM and r, z, n for the GRU), so its outputs match the fused kernel's to float
// rounding (the pointwise ops run fused, rnn_steps.cc, with activations within 3 ulp); the backward is
// the usual backpropagation through time, written out so that the gate gradients of every step are at
// hand.
#include "core/dp/grad_sample/recurrent.h"

#include <atomic>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "core/dp/grad_sample/rnn_steps.h"

namespace bastion::core::dp::grad_sample {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// --- Tapes -------------------------------------------------------------------------------------------

std::mutex tapes_mutex;
std::unordered_map<int64_t, RnnTape>& Tapes() {
  static auto* tapes = new std::unordered_map<int64_t, RnnTape>();
  return *tapes;
}
std::atomic<int64_t> next_tape{0};

void WriteTape(int64_t id, RnnTape tape) {
  const std::lock_guard<std::mutex> lock(tapes_mutex);
  auto found = Tapes().find(id);
  if (found != Tapes().end()) found->second = std::move(tape);
}

// --- The recurrence ------------------------------------------------------------------------------------

int64_t GatesPerUnit(RnnMode mode) {
  switch (mode) {
    case RnnMode::kLstm:
      return 4;
    case RnnMode::kGru:
      return 3;
    default:
      return 1;
  }
}

struct Weights {
  at::Tensor w_ih, w_hh, b_ih, b_hh;  // biases undefined without has_biases
};

Weights WeightsOf(const std::vector<at::Tensor>& params, const RnnConfig& config, int64_t k) {
  const int64_t stride = config.has_biases ? 4 : 2;
  Weights w;
  w.w_ih = params[static_cast<size_t>(k * stride)];
  w.w_hh = params[static_cast<size_t>(k * stride + 1)];
  if (config.has_biases) {
    w.b_ih = params[static_cast<size_t>(k * stride + 2)];
    w.b_hh = params[static_cast<size_t>(k * stride + 3)];
  }
  return w;
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

// What the backward of one layer-direction needs, batch-first [B, T, ...].
struct Saved {
  at::Tensor input;     // x, [B, T, I]
  at::Tensor previous;  // h_{t-1}, [B, T, H]
  at::Tensor gates;     // LSTM: i, f, g, o after activation [B, T, 4H]; GRU: r, z, n [B, T, 3H]; RNN: h_t [B, T, H]
  at::Tensor cells;     // LSTM: c_t [B, T, H]; GRU: (W_hh h + b_hh)_n [B, T, H]
  at::Tensor previous_cells;  // LSTM: c_{t-1} [B, T, H]
};

struct ForwardResult {
  at::Tensor output;  // [B, T, D·H]
  at::Tensor h_n, c_n;
  std::vector<Saved> saved;  // per layer-direction
};

ForwardResult RunForward(const at::Tensor& input, const std::vector<at::Tensor>& hx,
                         const std::vector<at::Tensor>& params, const RnnConfig& config) {
  const int64_t directions = config.bidirectional ? 2 : 1;
  at::Tensor x = config.batch_first ? input : input.transpose(0, 1);
  x = x.contiguous();
  const int64_t batch = x.size(0);
  const int64_t steps = x.size(1);
  const at::Tensor& h0 = hx.at(0);
  const int64_t hidden = h0.size(2);
  const int64_t gates = GatesPerUnit(config.mode) * hidden;
  const bool lstm = config.mode == RnnMode::kLstm;
  const bool gated = lstm || config.mode == RnnMode::kGru;
  ForwardResult result;
  result.h_n = at::empty_like(h0);
  if (lstm) result.c_n = at::empty_like(hx.at(1));
  result.saved.resize(static_cast<size_t>(config.num_layers * directions));
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    at::Tensor y = at::empty({batch, steps, directions * hidden}, x.options());
    for (int64_t direction = 0; direction < directions; ++direction) {
      const int64_t k = layer * directions + direction;
      const Weights w = WeightsOf(params, config, k);
      Saved& saved = result.saved[static_cast<size_t>(k)];
      saved.input = x;
      saved.previous = at::empty({batch, steps, hidden}, x.options());
      saved.gates = at::empty({batch, steps, gated ? gates : hidden}, x.options());
      if (gated) saved.cells = at::empty({batch, steps, hidden}, x.options());
      if (lstm) saved.previous_cells = at::empty({batch, steps, hidden}, x.options());
      const at::Tensor projected = Linear(x, w.w_ih, w.b_ih).contiguous();  // [B, T, G]
      // h_{t-1} and c_{t-1}, which each step overwrites; state: h_{t-1} W_hhᵀ + b_hh.
      at::Tensor h = h0[k].clone(at::MemoryFormat::Contiguous);
      at::Tensor c = lstm ? hx.at(1)[k].clone(at::MemoryFormat::Contiguous) : at::Tensor();
      at::Tensor state = at::empty({batch, gates}, x.options());
      const at::Tensor w_hh_t = w.w_hh.t();
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dp_rnn_forward", [&] {
        RnnStep<scalar_t> step;
        step.batch = batch;
        step.hidden = hidden;
        step.in_stride = steps * gates;
        step.state = state.data_ptr<scalar_t>();
        step.h = h.data_ptr<scalar_t>();
        step.c = lstm ? c.data_ptr<scalar_t>() : nullptr;
        step.gates_stride = steps * saved.gates.size(2);
        step.saved_stride = steps * hidden;
        step.y_stride = steps * directions * hidden;
        for (int64_t s = 0; s < steps; ++s) {
          const int64_t t = direction == 0 ? s : steps - 1 - s;
          if (w.b_hh.defined()) {
            at::addmm_out(state, w.b_hh, h, w_hh_t);
          } else {
            at::mm_out(state, h, w_hh_t);
          }
          step.in = projected.data_ptr<scalar_t>() + t * gates;
          step.gates = saved.gates.data_ptr<scalar_t>() + t * saved.gates.size(2);
          step.previous = saved.previous.data_ptr<scalar_t>() + t * hidden;
          step.cells = gated ? saved.cells.data_ptr<scalar_t>() + t * hidden : nullptr;
          step.previous_cells = lstm ? saved.previous_cells.data_ptr<scalar_t>() + t * hidden : nullptr;
          step.y = y.data_ptr<scalar_t>() + t * directions * hidden + direction * hidden;
          ForwardStep(config.mode, step);
        }
      });
      result.h_n[k].copy_(h);
      if (lstm) result.c_n[k].copy_(c);
    }
    x = y;
  }
  result.output = x;
  return result;
}

// Gradients of one backward through time.
struct BackwardResult {
  at::Tensor d_input;  // [B, T, I] batch-first
  at::Tensor d_h0, d_c0;
  std::vector<at::Tensor> d_params;  // flat order; undefined when not needed
  RnnTape tape;
};

BackwardResult RunBackward(const std::vector<Saved>& saved, const std::vector<at::Tensor>& params,
                           const RnnConfig& config, at::Tensor d_output, const at::Tensor& d_h_n,
                           const at::Tensor& d_c_n, const std::vector<bool>& params_needed, bool record) {
  const int64_t directions = config.bidirectional ? 2 : 1;
  const int64_t layers = config.num_layers;
  const Saved& first = saved.front();
  const int64_t batch = first.input.size(0);
  const int64_t steps = first.input.size(1);
  const int64_t hidden = first.previous.size(2);
  const int64_t stride = config.has_biases ? 4 : 2;
  BackwardResult result;
  result.d_params.resize(params.size());
  result.d_h0 = at::zeros({layers * directions, batch, hidden}, first.input.options());
  if (config.mode == RnnMode::kLstm) result.d_c0 = at::zeros_like(result.d_h0);
  if (record) {
    result.tape.batch = batch;
    const size_t count = saved.size();
    result.tape.inputs.resize(count);
    result.tape.previous.resize(count);
    result.tape.d_input_gates.resize(count);
    result.tape.d_hidden_gates.resize(count);
  }
  for (int64_t layer = layers - 1; layer >= 0; --layer) {
    if (d_output.defined()) d_output = d_output.contiguous();
    at::Tensor d_x;
    for (int64_t direction = 0; direction < directions; ++direction) {
      const int64_t k = layer * directions + direction;
      const Saved& s = saved[static_cast<size_t>(k)];
      const Weights w = WeightsOf(params, config, k);
      const int64_t gates = w.w_hh.size(0);
      at::Tensor d_in_gates = at::empty({batch, steps, gates}, s.input.options());
      at::Tensor d_state_gates = config.mode == RnnMode::kGru ? at::empty_like(d_in_gates) : d_in_gates;
      at::Tensor dh = d_h_n.defined() ? d_h_n[k].clone(at::MemoryFormat::Contiguous)
                                      : at::zeros({batch, hidden}, s.input.options());
      at::Tensor dc;
      if (config.mode == RnnMode::kLstm) {
        dc = d_c_n.defined() ? d_c_n[k].clone(at::MemoryFormat::Contiguous) : at::zeros_like(dh);
      }
      at::Tensor dh_next = at::empty_like(dh);
      AT_DISPATCH_FLOATING_TYPES(s.input.scalar_type(), "dp_rnn_backward", [&] {
        RnnStep<scalar_t> step;
        step.batch = batch;
        step.hidden = hidden;
        step.d_output_stride = steps * directions * hidden;
        step.dc = dc.defined() ? dc.data_ptr<scalar_t>() : nullptr;
        step.gates_stride = steps * s.gates.size(2);
        step.saved_stride = steps * hidden;
        step.d_stride = steps * gates;
        for (int64_t n = 0; n < steps; ++n) {
          const int64_t t = direction == 0 ? steps - 1 - n : n;
          step.dh = dh.data_ptr<scalar_t>();
          step.d_output = d_output.defined()
                              ? d_output.data_ptr<scalar_t>() + t * directions * hidden + direction * hidden
                              : nullptr;
          step.gates = s.gates.data_ptr<scalar_t>() + t * s.gates.size(2);
          step.cells = s.cells.defined() ? s.cells.data_ptr<scalar_t>() + t * hidden : nullptr;
          step.previous = s.previous.data_ptr<scalar_t>() + t * hidden;
          step.previous_cells =
              s.previous_cells.defined() ? s.previous_cells.data_ptr<scalar_t>() + t * hidden : nullptr;
          step.d_in = d_in_gates.data_ptr<scalar_t>() + t * gates;
          step.d_state = d_state_gates.data_ptr<scalar_t>() + t * gates;
          BackwardStep(config.mode, step);
          // dL/dh_{t-1}: the state gates' gradients through W_hh (the GRU adds them to dh·z).
          if (config.mode == RnnMode::kGru) {
            at::addmm_out(dh_next, dh, d_state_gates.select(1, t), w.w_hh);
          } else {
            at::mm_out(dh_next, d_in_gates.select(1, t), w.w_hh);
          }
          std::swap(dh, dh_next);
        }
      });
      result.d_h0[k].copy_(dh);
      if (config.mode == RnnMode::kLstm) result.d_c0[k].copy_(dc);
      const at::Tensor dx = at::matmul(d_in_gates, w.w_ih);
      d_x = d_x.defined() ? d_x + dx : dx;
      const at::Tensor flat_in = d_in_gates.reshape({batch * steps, gates});
      const at::Tensor flat_state = d_state_gates.reshape({batch * steps, gates});
      const size_t base = static_cast<size_t>(k * stride);
      if (params_needed[base]) result.d_params[base] = at::mm(flat_in.t(), s.input.reshape({batch * steps, -1}));
      if (params_needed[base + 1]) {
        result.d_params[base + 1] = at::mm(flat_state.t(), s.previous.reshape({batch * steps, hidden}));
      }
      if (config.has_biases) {
        if (params_needed[base + 2]) result.d_params[base + 2] = flat_in.sum(0);
        if (params_needed[base + 3]) result.d_params[base + 3] = flat_state.sum(0);
      }
      if (record) {
        const auto kk = static_cast<size_t>(k);
        result.tape.inputs[kk] = s.input;
        result.tape.previous[kk] = s.previous;
        result.tape.d_input_gates[kk] = d_in_gates;
        result.tape.d_hidden_gates[kk] = d_state_gates;
      }
    }
    d_output = d_x;
  }
  result.d_input = d_output;
  return result;
}

RnnConfig ConfigOf(int64_t mode, bool has_biases, int64_t num_layers, bool bidirectional, bool batch_first) {
  if (mode < 0 || mode > 3) throw std::invalid_argument("dp_rnn: unknown mode " + std::to_string(mode));
  RnnConfig config;
  config.mode = static_cast<RnnMode>(mode);
  config.has_biases = has_biases;
  config.num_layers = num_layers;
  config.bidirectional = bidirectional;
  config.batch_first = batch_first;
  return config;
}

void CheckArguments(const at::Tensor& input, at::TensorList hx, at::TensorList params, const RnnConfig& config) {
  const int64_t directions = config.bidirectional ? 2 : 1;
  const size_t expected_params = static_cast<size_t>(config.num_layers * directions * (config.has_biases ? 4 : 2));
  const size_t expected_states = config.mode == RnnMode::kLstm ? 2 : 1;
  TORCH_CHECK(input.dim() == 3, "dp_rnn: the input must be 3-D, got ", input.dim(), " dimensions");
  TORCH_CHECK(params.size() == expected_params, "dp_rnn: expected ", expected_params, " weights, got ", params.size());
  TORCH_CHECK(hx.size() == expected_states, "dp_rnn: expected ", expected_states, " initial states, got ", hx.size());
  TORCH_CHECK(config.num_layers >= 1, "dp_rnn: num_layers must be at least 1");
}

class DpRnnFunction : public torch::autograd::Function<DpRnnFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& input, at::TensorList hx, at::TensorList params,
                               int64_t mode, bool has_biases, int64_t num_layers, bool bidirectional, bool batch_first,
                               int64_t tape) {
    const RnnConfig config = ConfigOf(mode, has_biases, num_layers, bidirectional, batch_first);
    CheckArguments(input, hx, params, config);
    const std::vector<at::Tensor> states(hx.begin(), hx.end());
    const std::vector<at::Tensor> weights(params.begin(), params.end());
    ForwardResult forward = RunForward(input, states, weights, config);
    if (tape >= 0) {
      RnnTape empty;
      empty.batch = forward.output.size(0);
      WriteTape(tape, std::move(empty));
    }
    // The weights, then five tensors per layer-direction (undefined where the mode has none).
    variable_list saved(weights.begin(), weights.end());
    for (const Saved& s : forward.saved)
      saved.insert(saved.end(), {s.input, s.previous, s.gates, s.cells, s.previous_cells});
    ctx->save_for_backward(saved);
    ctx->saved_data["config"] = std::vector<int64_t>{mode, has_biases, num_layers, bidirectional, batch_first};
    ctx->saved_data["tape"] = tape;
    ctx->saved_data["states"] = static_cast<int64_t>(states.size());
    at::Tensor output = batch_first ? forward.output : forward.output.transpose(0, 1);
    at::Tensor c_n = forward.c_n.defined() ? forward.c_n : at::empty({0}, input.options());
    if (!forward.c_n.defined()) ctx->mark_non_differentiable({c_n});
    return {output, forward.h_n, c_n};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto c = ctx->saved_data["config"].toIntVector();
    const RnnConfig config = ConfigOf(c[0], c[1] != 0, c[2], c[3] != 0, c[4] != 0);
    const variable_list all = ctx->get_saved_variables();
    const size_t weights = all.size() - 5 * static_cast<size_t>(config.num_layers * (config.bidirectional ? 2 : 1));
    const std::vector<at::Tensor> params(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(weights));
    std::vector<Saved> saved;
    for (size_t i = weights; i < all.size(); i += 5)
      saved.push_back({all[i], all[i + 1], all[i + 2], all[i + 3], all[i + 4]});
    const int64_t tape = ctx->saved_data["tape"].toInt();
    const auto states = static_cast<size_t>(ctx->saved_data["states"].toInt());
    // Inputs in the order autograd counts them: input, each state, each weight, then the five flags and the tape.
    std::vector<bool> params_needed(params.size());
    for (size_t p = 0; p < params.size(); ++p) params_needed[p] = ctx->needs_input_grad(1 + states + p);
    at::Tensor d_output = grads[0];
    if (d_output.defined() && !config.batch_first) d_output = d_output.transpose(0, 1);
    BackwardResult result =
        RunBackward(saved, params, config, d_output, grads[1], config.mode == RnnMode::kLstm ? grads[2] : at::Tensor(),
                    params_needed, tape >= 0);
    if (tape >= 0) WriteTape(tape, std::move(result.tape));
    variable_list out;
    out.push_back(config.batch_first ? result.d_input : result.d_input.transpose(0, 1));
    out.push_back(result.d_h0);
    if (states == 2) out.push_back(result.d_c0);
    for (at::Tensor& g : result.d_params) out.push_back(std::move(g));
    for (int i = 0; i < 6; ++i) out.emplace_back();
    return out;
  }
};

// --- The rule ------------------------------------------------------------------------------------------

class RecurrentBatch final : public LayerBatch {
 public:
  RecurrentBatch(RnnTape tape, const std::vector<Slot>& slots, const std::vector<size_t>& flat, bool has_biases)
      : tape_(std::move(tape)), slots_(slots), flat_(flat), has_biases_(has_biases) {}

  at::Tensor PerSample(size_t slot) override {
    const size_t stride = has_biases_ ? 4 : 2;
    const size_t k = flat_.at(slot) / stride;
    const size_t which = flat_.at(slot) % stride;
    const Slot& s = slots_.at(slot);
    if (k >= tape_.inputs.size() || !tape_.inputs[k].defined()) {
      // No backward reached the node (the loss does not depend on it): zero gradients.
      std::vector<int64_t> shape{tape_.batch};
      shape.insert(shape.end(), s.shape.begin(), s.shape.end());
      return at::zeros(shape);
    }
    const at::Tensor& gi = tape_.d_input_gates[k];
    const at::Tensor& gh = tape_.d_hidden_gates[k];
    switch (which) {
      case 0:
        return at::bmm(gi.transpose(1, 2), tape_.inputs[k]);
      case 1:
        return at::bmm(gh.transpose(1, 2), tape_.previous[k]);
      case 2:
        return gi.sum(1);
      default:
        return gh.sum(1);
    }
  }

 private:
  RnnTape tape_;
  std::vector<Slot> slots_;
  std::vector<size_t> flat_;
  bool has_biases_;
};

class RecurrentLayer final : public Layer {
 public:
  RecurrentLayer(const RnnConfig& config, std::shared_ptr<RnnTapeHandle> tape, std::vector<size_t> flat)
      : config_(config), tape_(std::move(tape)), flat_(std::move(flat)) {}
  std::string Rule() const override { return RnnRuleName(config_.mode); }
  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& /*a*/, const at::Tensor& /*delta*/,
                                      Path /*path*/) const override {
    return std::make_unique<RecurrentBatch>(tape_->Take(), slots, flat_, config_.has_biases);
  }

 private:
  RnnConfig config_;
  std::shared_ptr<RnnTapeHandle> tape_;
  std::vector<size_t> flat_;
};

}  // namespace

// The kernel of bastion::dp_rnn (registered below).
std::tuple<at::Tensor, at::Tensor, at::Tensor> DpRnn(const at::Tensor& input, at::TensorList hx, at::TensorList params,
                                                     int64_t mode, bool has_biases, int64_t num_layers,
                                                     bool bidirectional, bool batch_first, int64_t tape) {
  variable_list out =
      DpRnnFunction::apply(input, hx, params, mode, has_biases, num_layers, bidirectional, batch_first, tape);
  return {out[0], out[1], out[2]};
}

std::string RnnRuleName(RnnMode mode) {
  switch (mode) {
    case RnnMode::kLstm:
      return "lstm";
    case RnnMode::kGru:
      return "gru";
    case RnnMode::kRnnTanh:
      return "rnn_tanh";
    default:
      return "rnn_relu";
  }
}

RnnTapeHandle::RnnTapeHandle() : id_(next_tape.fetch_add(1)) {
  const std::lock_guard<std::mutex> lock(tapes_mutex);
  Tapes().emplace(id_, RnnTape{});
}

RnnTapeHandle::~RnnTapeHandle() {
  const std::lock_guard<std::mutex> lock(tapes_mutex);
  Tapes().erase(id_);
}

RnnTape RnnTapeHandle::Take() {
  const std::lock_guard<std::mutex> lock(tapes_mutex);
  RnnTape taken = std::move(Tapes()[id_]);
  Tapes()[id_] = RnnTape{};
  return taken;
}

std::unique_ptr<Layer> MakeRecurrentLayer(const RnnConfig& config, std::shared_ptr<RnnTapeHandle> tape,
                                          std::vector<Slot> slots, std::vector<size_t> flat) {
  auto layer = std::make_unique<RecurrentLayer>(config, std::move(tape), std::move(flat));
  layer->slots = std::move(slots);
  return layer;
}

}  // namespace bastion::core::dp::grad_sample

TORCH_LIBRARY(bastion, m) {
  m.def(
      "dp_rnn(Tensor input, Tensor[] hx, Tensor[] params, int mode, bool has_biases, int num_layers, "
      "bool bidirectional, bool batch_first, int tape) -> (Tensor, Tensor, Tensor)",
      torch::dispatch(c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(bastion::core::dp::grad_sample::DpRnn)));
}
