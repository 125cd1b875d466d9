#include "core/dp/grad_sample/conv_kernel.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <ATen/Parallel.h>

#include "core/dp/grad_sample/cpu_isa.h"

namespace bastion::core::dp::grad_sample {
namespace {

// A vector of Lanes floats: one register of the instruction set a Samples variant below is built for
// (16 for AVX-512, 8 for AVX2, 4 for SSE2).
template <int Lanes>
struct VecOf {
  typedef float type __attribute__((vector_size(Lanes * sizeof(float))));
};
constexpr int64_t kRows = 4;  // output channels per register block

// acc [kRows, NV·Lanes] = d [kRows, L] · u [L, NV·Lanes of a row of stride kp]: kRows·NV accumulators stay
// in registers while the positions stream through, each loaded row of u feeding kRows rows of δ.
template <int Lanes, int NV, typename Vec = typename VecOf<Lanes>::type>
__attribute__((always_inline)) inline void Block(const float* d, int64_t positions, const float* u, int64_t kp,
                                                 Vec (&acc)[kRows][NV]) {
#pragma GCC unroll 16
  for (int64_t r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = Vec{};
  for (int64_t l = 0; l < positions; ++l) {
    Vec row[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) std::memcpy(&row[j], u + l * kp + j * Lanes, sizeof(Vec));
#pragma GCC unroll 16
    for (int64_t r = 0; r < kRows; ++r) {
      const float s = d[r * positions + l];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] += s * row[j];
    }
  }
}

// One block of kRows output channels by NV·Lanes columns: its squared norm, and its valid part written
// to out (rows of stride k) when out is not null.
template <int Lanes, int NV, typename Vec = typename VecOf<Lanes>::type>
__attribute__((always_inline)) inline double BlockNorm(const float* d, int64_t positions, const float* u, int64_t kp,
                                                       int64_t rows, int64_t columns, float* out, int64_t k) {
  Vec acc[kRows][NV];
  Block<Lanes, NV>(d, positions, u, kp, acc);
  Vec squares{};
#pragma GCC unroll 16
  for (int64_t r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) squares += acc[r][j] * acc[r][j];  // padding rows and columns are 0
  if (out != nullptr && columns == NV * Lanes) {
    // Whole vectors: stored as they are.
    for (int64_t r = 0; r < rows; ++r) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) std::memcpy(out + r * k + j * Lanes, &acc[r][j], sizeof(Vec));
    }
  } else if (out != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      float values[NV * Lanes];
      std::memcpy(values, acc[r], sizeof(values));
      std::memcpy(out + r * k, values, static_cast<size_t>(columns) * sizeof(float));
    }
  }
  double sum = 0;
  for (int i = 0; i < Lanes; ++i) sum += squares[i];
  return sum;
}

// Copies n floats of src at stride `step` to row and returns the position after them; the common
// kernel widths at stride 1 as fixed-size copies.
template <int N>
__attribute__((always_inline)) inline float* CopyFixed(float* row, const float* src) {
  std::memcpy(row, src, N * sizeof(float));
  return row + N;
}

__attribute__((always_inline)) inline float* CopyRow(float* row, const float* src, int64_t n, int64_t step) {
  if (step == 1) {
    switch (n) {
      case 3:
        return CopyFixed<3>(row, src);
      case 4:
        return CopyFixed<4>(row, src);
      case 5:
        return CopyFixed<5>(row, src);
      case 7:
        return CopyFixed<7>(row, src);
      case 8:
        return CopyFixed<8>(row, src);
      default:
        break;
    }
  }
  for (int64_t i = 0; i < n; ++i) row[i] = src[i * step];
  return row + n;
}

// Samples [begin, end): per sample and group, U_i gathered into u [L, kp] (kp = C/G·kh·kw rounded up to
// Lanes, the padding columns 0) and δ_i's rows into d [⌈O/G⌉₄, L] (padding rows 0), then the blocks.
template <int Lanes, int MaxVectors>
__attribute__((always_inline)) inline void Samples(const ConvShape& s, const float* input, const float* delta,
                                                   float* norms, float* grads, int64_t begin, int64_t end) {
  constexpr int64_t kLanes = Lanes;
  const int64_t cg = s.channels / s.groups, og = s.out / s.groups;
  const int64_t k = cg * s.kernel[0] * s.kernel[1];
  const int64_t kp = (k + kLanes - 1) / kLanes * kLanes;
  const int64_t positions = s.out_height * s.out_width;
  const int64_t rows_padded = (og + kRows - 1) / kRows * kRows;
  std::vector<float> u(static_cast<size_t>(positions * kp), 0.0f);
  std::vector<float> d(static_cast<size_t>(rows_padded * positions), 0.0f);
  const int64_t plane = s.height * s.width;
  const int64_t wp = s.width + 2 * s.padding[1];
  const int64_t padded_plane = (s.height + 2 * s.padding[0]) * wp;
  std::vector<float> padded(static_cast<size_t>(cg * padded_plane), 0.0f);  // borders stay 0
  for (int64_t i = begin; i < end; ++i) {
    double norm = 0;
    for (int64_t g = 0; g < s.groups; ++g) {
      // The group's input planes into a zero-padded copy, then U_i for group g:
      // u[l, (c, kh, kw)] = padded[c, y·s + kh·d, x·s + kw·d].
      const float* x = input + (i * s.channels + g * cg) * plane;
      for (int64_t c = 0; c < cg; ++c) {
        for (int64_t y = 0; y < s.height; ++y) {
          std::memcpy(padded.data() + c * padded_plane + (y + s.padding[0]) * wp + s.padding[1],
                      x + c * plane + y * s.width, static_cast<size_t>(s.width) * sizeof(float));
        }
      }
      for (int64_t oy = 0; oy < s.out_height; ++oy) {
        for (int64_t ox = 0; ox < s.out_width; ++ox) {
          float* row = u.data() + (oy * s.out_width + ox) * kp;
          const float* corner = padded.data() + oy * s.stride[0] * wp + ox * s.stride[1];
          for (int64_t c = 0; c < cg; ++c) {
            for (int64_t kh = 0; kh < s.kernel[0]; ++kh) {
              const float* src = corner + c * padded_plane + kh * s.dilation[0] * wp;
              row = CopyRow(row, src, s.kernel[1], s.dilation[1]);
            }
          }
        }
      }
      std::memcpy(d.data(), delta + (i * s.out + g * og) * positions,
                  static_cast<size_t>(og * positions) * sizeof(float));
      float* out = grads == nullptr ? nullptr : grads + (i * s.out + g * og) * k;
      for (int64_t o = 0; o < og; o += kRows) {
        const int64_t rows = std::min(kRows, og - o);
        for (int64_t j = 0; j < kp; j += MaxVectors * kLanes) {
          const int64_t vectors = std::min<int64_t>(MaxVectors, (kp - j) / kLanes);
          const int64_t columns = std::min(k - j, vectors * kLanes);
          const float* dr = d.data() + o * positions;
          const float* uj = u.data() + j;
          float* oj = out == nullptr ? nullptr : out + o * k + j;
          if (MaxVectors >= 4 && vectors == 4) {
            norm += BlockNorm<Lanes, (MaxVectors >= 4 ? 4 : 1)>(dr, positions, uj, kp, rows, columns, oj, k);
          } else if (MaxVectors >= 3 && vectors == 3) {
            norm += BlockNorm<Lanes, (MaxVectors >= 3 ? 3 : 1)>(dr, positions, uj, kp, rows, columns, oj, k);
          } else if (vectors == 2) {
            norm += BlockNorm<Lanes, 2>(dr, positions, uj, kp, rows, columns, oj, k);
          } else {
            norm += BlockNorm<Lanes, 1>(dr, positions, uj, kp, rows, columns, oj, k);
          }
        }
      }
      // The next group's rows beyond O/G stay 0: only the first og rows were written.
    }
    norms[i] = static_cast<float>(norm);
  }
}

using SamplesFn = void (*)(const ConvShape&, const float*, const float*, float*, float*, int64_t, int64_t);

// One variant per instruction set, its block sized to the registers: 4 rows by 4 vectors (16 of the 32
// AVX-512 registers), 4 by 2 for AVX2 and SSE2 (16 registers each).
void SamplesBaseline(const ConvShape& s, const float* input, const float* delta, float* norms, float* grads,
                     int64_t begin, int64_t end) {
  Samples<4, 2>(s, input, delta, norms, grads, begin, end);
}
#if defined(__x86_64__)
__attribute__((target("arch=x86-64-v3"))) void SamplesAvx2(const ConvShape& s, const float* input, const float* delta,
                                                           float* norms, float* grads, int64_t begin, int64_t end) {
  Samples<8, 2>(s, input, delta, norms, grads, begin, end);
}
__attribute__((target("arch=x86-64-v4"))) void SamplesAvx512(const ConvShape& s, const float* input, const float* delta,
                                                             float* norms, float* grads, int64_t begin, int64_t end) {
  Samples<16, 4>(s, input, delta, norms, grads, begin, end);
}
#endif

SamplesFn PickSamples() {
#if defined(__x86_64__)
  switch (MaxIsa()) {
    case Isa::kAvx512:
      return SamplesAvx512;
    case Isa::kAvx2:
      return SamplesAvx2;
    default:
      break;
  }
#endif
  return SamplesBaseline;
}

}  // namespace

void ConvWeightPerSample(const ConvShape& shape, const float* input, const float* delta, float* norms, float* grads) {
  const SamplesFn samples = PickSamples();
  at::parallel_for(0, shape.batch, 1,
                   [&](int64_t begin, int64_t end) { samples(shape, input, delta, norms, grads, begin, end); });
}

}  // namespace bastion::core::dp::grad_sample
