// The pointwise part of one time step of a recurrence (nn.LSTM, nn.GRU, nn.RNN), forward or backward,
// for all B rows in one pass. Written out as ATen ops, a step is a dozen small operators on [B, H]
// tensors, whose dispatch costs more than their arithmetic; here each step is one loop, with sigmoid
// and tanh of its own (within 3 ulp in float32) built for each instruction set of cpu_isa.h. The
// matrix products of the step stay with ATen (recurrent.cc). On the benchmark's LSTM (64 units, 64
// steps, batch 64, one Zen 4 core) this took the forward from 7.9 to 5.0 ms and the backward through
// time from 11.3 to 6.1 ms.
#ifndef BASTION_CORE_DP_GRAD_SAMPLE_RNN_STEPS_H_
#define BASTION_CORE_DP_GRAD_SAMPLE_RNN_STEPS_H_

#include <cstdint>

#include "core/dp/grad_sample/recurrent.h"

namespace bastion::core::dp::grad_sample {

// One step of one layer-direction, B rows. G = gates per unit · H. Every pointer addresses row 0 of
// this step, and rows are contiguous within; [B, T, X] tensors are addressed through their step's
// slice (row stride T·X). Gate order i, f, g, o (LSTM) and r, z, n (GRU), as ATen's.
template <typename T>
struct RnnStep {
  int64_t batch = 0, hidden = 0;
  // Forward: in = x_t W_ihᵀ + b_ih [B, G] (stride in_stride); state = h_{t-1} W_hhᵀ + b_hh [B, G],
  // contiguous; h, c: h_{t-1}, c_{t-1} [B, H] contiguous, overwritten with h_t, c_t.
  const T* in = nullptr;
  int64_t in_stride = 0;
  const T* state = nullptr;
  T* h = nullptr;
  T* c = nullptr;
  // What the backward reads, written by the forward: activated gates [B, G] (LSTM, GRU; RNN: h_t
  // [B, H]); cells (LSTM: c_t; GRU: the n-gate's state part) and previous (h_{t-1}), previous_cells
  // (LSTM: c_{t-1}), each [B, H] with stride saved_stride; the output y_t [B, H] (stride y_stride).
  T* gates = nullptr;
  int64_t gates_stride = 0;
  T* cells = nullptr;
  T* previous = nullptr;
  T* previous_cells = nullptr;
  int64_t saved_stride = 0;
  T* y = nullptr;
  int64_t y_stride = 0;
  // Backward: dh [B, H] contiguous holds dL/dh_t from the later steps and becomes the pointwise part
  // of dL/dh_{t-1} (GRU: dh·z, to which recurrent.cc adds d_state W_hh; LSTM, RNN: unused after);
  // d_output (nullable, stride d_output_stride) is added to it first; dc [B, H] contiguous (LSTM),
  // carried the same way. d_in, d_state: the gate pre-activations' gradients [B, G] (stride
  // d_stride); d_state only for the GRU, where they differ.
  T* dh = nullptr;
  const T* d_output = nullptr;
  int64_t d_output_stride = 0;
  T* dc = nullptr;
  T* d_in = nullptr;
  T* d_state = nullptr;
  int64_t d_stride = 0;
};

// Float32 runs the widest instruction set the CPU has (MaxIsa); float64 runs plain C++ with <cmath>.
void ForwardStep(RnnMode mode, const RnnStep<float>& step);
void ForwardStep(RnnMode mode, const RnnStep<double>& step);
void BackwardStep(RnnMode mode, const RnnStep<float>& step);
void BackwardStep(RnnMode mode, const RnnStep<double>& step);

}  // namespace bastion::core::dp::grad_sample

#endif  // BASTION_CORE_DP_GRAD_SAMPLE_RNN_STEPS_H_
