// See rnn_steps.h. The float32 steps are one template built three times (baseline x86-64, AVX2,
// AVX-512) with GCC target attributes, on GCC vectors of 8 floats for sigmoid and tanh and plain loops,
// which GCC vectorises, for the rest; every helper is always_inline so that each build keeps its
// instruction set. The float64 steps are the same template on <cmath>.
#include "core/dp/grad_sample/rnn_steps.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/dp/grad_sample/cpu_isa.h"

#define BASTION_INLINE __attribute__((always_inline)) inline

// The vector helpers return GCC vectors, whose ABI differs between the builds (-Wpsabi); they are
// always inlined, so no call crosses builds.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace bastion::core::dp::grad_sample {
namespace {

typedef float Floats8 __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t Ints8 __attribute__((vector_size(8 * sizeof(int32_t))));

BASTION_INLINE Floats8 Splat(float v) { return Floats8{} + v; }

// e^x, x clamped to [-87, 88] (so that 2^n stays a normal float): x = n·ln 2 + r with |r| ≤ ln(2)/2
// (ln 2 split so that n·high is exact), e^r by its Taylor series to degree 7 (remainder below 6e-9),
// scaled by 2^n through the exponent bits. Within 2 ulp. NaN gives NaN (through r; n, which is
// converted to an integer, is taken from 0 there).
BASTION_INLINE Floats8 Exp(Floats8 x) {
  x = x < -87.0f ? Splat(-87.0f) : x;
  x = x > 88.0f ? Splat(88.0f) : x;
  const Floats8 number = x == x ? x : Splat(0.0f);
  const Floats8 round = Splat(12582912.0f);  // 1.5·2^23: adding it rounds to an integer
  const Floats8 n = (number * 1.44269504f + round) - round;
  Floats8 r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187e-6f;
  Floats8 p = r * (1.0f / 5040) + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const Ints8 exponent = (__builtin_convertvector(n, Ints8) + 127) << 23;
  return p * (Floats8)exponent;
}

BASTION_INLINE Floats8 Sigmoid(Floats8 x) { return 1.0f / (1.0f + Exp(-x)); }

// tanh: below |x| = 0.5 its Taylor series to x^15 (remainder below 4e-8 relative), above it
// 1 - 2/(e^{2|x|} + 1) with the sign of x (the subtraction loses at most a factor 2 to cancellation).
BASTION_INLINE Floats8 Tanh(Floats8 x) {
  const Ints8 bits = (Ints8)x;
  const Ints8 magnitude_bits = bits & 0x7FFFFFFF;
  const Floats8 a = (Floats8)magnitude_bits;
  const Floats8 s = x * x;
  Floats8 p = s * (-929569.0f / 638512875) + 21844.0f / 6081075;
  p = p * s + -1382.0f / 155925;
  p = p * s + 62.0f / 2835;
  p = p * s + -17.0f / 315;
  p = p * s + 2.0f / 15;
  p = p * s + -1.0f / 3;
  const Floats8 small = x + x * s * p;
  const Floats8 large = 1.0f - 2.0f / (Exp(a + a) + 1.0f);
  const Ints8 signed_bits = (Ints8)large | (bits & static_cast<int32_t>(0x80000000u));
  return a < 0.5f ? small : (Floats8)signed_bits;
}

// y[j] = tanh(x[j]) or sigmoid(x[j]) for j < n, 8 at a time (the last few through a zero-padded vector).
template <bool kTanh>
BASTION_INLINE void Map(const float* x, float* y, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    Floats8 v;
    std::memcpy(&v, x + j, sizeof(v));
    v = kTanh ? Tanh(v) : Sigmoid(v);
    std::memcpy(y + j, &v, sizeof(v));
  }
  if (j < n) {
    Floats8 v{};
    const auto rest = static_cast<size_t>(n - j) * sizeof(float);
    std::memcpy(&v, x + j, rest);
    v = kTanh ? Tanh(v) : Sigmoid(v);
    std::memcpy(y + j, &v, rest);
  }
}

BASTION_INLINE void SigmoidRow(const float* x, float* y, int64_t n) { Map<false>(x, y, n); }
BASTION_INLINE void TanhRow(const float* x, float* y, int64_t n) { Map<true>(x, y, n); }
BASTION_INLINE void SigmoidRow(const double* x, double* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = 1.0 / (1.0 + std::exp(-x[j]));
}
BASTION_INLINE void TanhRow(const double* x, double* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = std::tanh(x[j]);
}

// The expressions below are those of the ATen ops they replace (recurrent.cc's history has them), term
// for term; GCC may contract a product and a sum into one FMA, which rounds once where ATen rounds twice.

template <typename T>
BASTION_INLINE void Forward(RnnMode mode, const RnnStep<T>& s, T* __restrict scratch) {
  const int64_t H = s.hidden;
  for (int64_t b = 0; b < s.batch; ++b) {
    const T* __restrict in = s.in + b * s.in_stride;
    const T* __restrict state = s.state + b * (mode == RnnMode::kLstm ? 4 : mode == RnnMode::kGru ? 3 : 1) * H;
    T* __restrict h = s.h + b * H;
    T* __restrict gates = s.gates + b * s.gates_stride;
    T* previous = s.previous + b * s.saved_stride;
    T* y = s.y + b * s.y_stride;
    std::memcpy(previous, h, static_cast<size_t>(H) * sizeof(T));
    switch (mode) {
      case RnnMode::kLstm: {
        T* __restrict c = s.c + b * H;
        T* cells = s.cells + b * s.saved_stride;
        std::memcpy(s.previous_cells + b * s.saved_stride, c, static_cast<size_t>(H) * sizeof(T));
#pragma GCC ivdep
        for (int64_t j = 0; j < 4 * H; ++j) scratch[j] = in[j] + state[j];
        SigmoidRow(scratch, gates, 2 * H);
        TanhRow(scratch + 2 * H, gates + 2 * H, H);
        SigmoidRow(scratch + 3 * H, gates + 3 * H, H);
        const T* __restrict i = gates;
        const T* __restrict f = gates + H;
        const T* __restrict g = gates + 2 * H;
        const T* __restrict o = gates + 3 * H;
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) c[j] = f[j] * c[j] + i[j] * g[j];
        std::memcpy(cells, c, static_cast<size_t>(H) * sizeof(T));
        TanhRow(c, scratch, H);
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) h[j] = o[j] * scratch[j];
        break;
      }
      case RnnMode::kGru: {
#pragma GCC ivdep
        for (int64_t j = 0; j < 2 * H; ++j) scratch[j] = in[j] + state[j];
        SigmoidRow(scratch, gates, 2 * H);
        const T* __restrict r = gates;
        const T* __restrict z = gates + H;
        T* __restrict n = gates + 2 * H;
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) scratch[j] = in[2 * H + j] + r[j] * state[2 * H + j];
        TanhRow(scratch, n, H);
        std::memcpy(s.cells + b * s.saved_stride, state + 2 * H, static_cast<size_t>(H) * sizeof(T));
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) h[j] = n[j] + z[j] * (h[j] - n[j]);
        break;
      }
      case RnnMode::kRnnTanh:
      case RnnMode::kRnnRelu: {
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) scratch[j] = in[j] + state[j];
        if (mode == RnnMode::kRnnTanh) {
          TanhRow(scratch, h, H);
        } else {
#pragma GCC ivdep
          for (int64_t j = 0; j < H; ++j) h[j] = scratch[j] > 0 ? scratch[j] : T(0);
        }
        std::memcpy(gates, h, static_cast<size_t>(H) * sizeof(T));
        break;
      }
    }
    std::memcpy(y, h, static_cast<size_t>(H) * sizeof(T));
  }
}

template <typename T>
BASTION_INLINE void Backward(RnnMode mode, const RnnStep<T>& s, T* __restrict scratch) {
  const int64_t H = s.hidden;
  for (int64_t b = 0; b < s.batch; ++b) {
    T* __restrict dh = s.dh + b * H;
    if (s.d_output != nullptr) {
      const T* __restrict d_output = s.d_output + b * s.d_output_stride;
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) dh[j] = dh[j] + d_output[j];
    }
    const T* __restrict gates = s.gates + b * s.gates_stride;
    T* __restrict d_in = s.d_in + b * s.d_stride;
    switch (mode) {
      case RnnMode::kLstm: {
        const T* __restrict i = gates;
        const T* __restrict f = gates + H;
        const T* __restrict g = gates + 2 * H;
        const T* __restrict o = gates + 3 * H;
        const T* __restrict previous_cells = s.previous_cells + b * s.saved_stride;
        T* __restrict dc = s.dc + b * H;
        T* __restrict tc = scratch;
        TanhRow(s.cells + b * s.saved_stride, tc, H);
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) {
          const T d_o = dh[j] * tc[j];
          dc[j] = dc[j] + dh[j] * o[j] * (1 - tc[j] * tc[j]);
          d_in[j] = dc[j] * g[j] * i[j] * (1 - i[j]);
          d_in[H + j] = dc[j] * previous_cells[j] * f[j] * (1 - f[j]);
          d_in[2 * H + j] = dc[j] * i[j] * (1 - g[j] * g[j]);
          d_in[3 * H + j] = d_o * o[j] * (1 - o[j]);
          dc[j] = dc[j] * f[j];
        }
        break;
      }
      case RnnMode::kGru: {
        const T* __restrict r = gates;
        const T* __restrict z = gates + H;
        const T* __restrict n = gates + 2 * H;
        const T* __restrict previous = s.previous + b * s.saved_stride;
        const T* __restrict state_n = s.cells + b * s.saved_stride;
        T* __restrict d_state = s.d_state + b * s.d_stride;
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) {
          const T d_n = dh[j] * (1 - z[j]) * (1 - n[j] * n[j]);
          const T d_z = dh[j] * (previous[j] - n[j]) * z[j] * (1 - z[j]);
          const T d_r = d_n * state_n[j] * r[j] * (1 - r[j]);
          d_in[j] = d_r;
          d_in[H + j] = d_z;
          d_in[2 * H + j] = d_n;
          d_state[j] = d_r;
          d_state[H + j] = d_z;
          d_state[2 * H + j] = d_n * r[j];
          dh[j] = dh[j] * z[j];
        }
        break;
      }
      case RnnMode::kRnnTanh:
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) d_in[j] = dh[j] * (1 - gates[j] * gates[j]);
        break;
      case RnnMode::kRnnRelu:
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) d_in[j] = dh[j] * (gates[j] > 0 ? T(1) : T(0));
        break;
    }
  }
}

// A row of scratch for a step: the widest it needs is 4H.
template <typename T>
std::vector<T> Scratch(int64_t hidden) {
  return std::vector<T>(static_cast<size_t>(4 * hidden));
}

void ForwardBaseline(RnnMode mode, const RnnStep<float>& s, float* scratch) { Forward(mode, s, scratch); }
void BackwardBaseline(RnnMode mode, const RnnStep<float>& s, float* scratch) { Backward(mode, s, scratch); }
#if defined(__x86_64__)
__attribute__((target("arch=x86-64-v3"))) void ForwardAvx2(RnnMode mode, const RnnStep<float>& s, float* scratch) {
  Forward(mode, s, scratch);
}
__attribute__((target("arch=x86-64-v3"))) void BackwardAvx2(RnnMode mode, const RnnStep<float>& s, float* scratch) {
  Backward(mode, s, scratch);
}
__attribute__((target("arch=x86-64-v4"))) void ForwardAvx512(RnnMode mode, const RnnStep<float>& s, float* scratch) {
  Forward(mode, s, scratch);
}
__attribute__((target("arch=x86-64-v4"))) void BackwardAvx512(RnnMode mode, const RnnStep<float>& s, float* scratch) {
  Backward(mode, s, scratch);
}
#endif

using StepFn = void (*)(RnnMode, const RnnStep<float>&, float*);

StepFn Pick(bool forward) {
#if defined(__x86_64__)
  switch (MaxIsa()) {
    case Isa::kAvx512:
      return forward ? ForwardAvx512 : BackwardAvx512;
    case Isa::kAvx2:
      return forward ? ForwardAvx2 : BackwardAvx2;
    default:
      break;
  }
#endif
  return forward ? ForwardBaseline : BackwardBaseline;
}

}  // namespace

void ForwardStep(RnnMode mode, const RnnStep<float>& step) {
  std::vector<float> scratch = Scratch<float>(step.hidden);
  Pick(true)(mode, step, scratch.data());
}

void BackwardStep(RnnMode mode, const RnnStep<float>& step) {
  std::vector<float> scratch = Scratch<float>(step.hidden);
  Pick(false)(mode, step, scratch.data());
}

void ForwardStep(RnnMode mode, const RnnStep<double>& step) {
  std::vector<double> scratch = Scratch<double>(step.hidden);
  Forward(mode, step, scratch.data());
}

void BackwardStep(RnnMode mode, const RnnStep<double>& step) {
  std::vector<double> scratch = Scratch<double>(step.hidden);
  Backward(mode, step, scratch.data());
}

}  // namespace bastion::core::dp::grad_sample
