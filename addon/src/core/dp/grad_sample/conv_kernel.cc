#include "core/dp/grad_sample/conv_kernel.h"

#include <algorithm>
#include <cstring>
#include <utility>
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

// One step of transposing a Lanes x Lanes block held as Lanes row vectors: in every 2S x 2S block of
// the matrix, the two off-diagonal S x S blocks swap. Rows a and b are rows i and i + S of such a block.
template <int Lanes, int S, typename Vec, size_t... J>
__attribute__((always_inline)) inline void SwapBlocks(Vec& a, Vec& b, std::index_sequence<J...> /*lanes*/) {
  const Vec low = __builtin_shufflevector(a, b, ((J & S) == 0 ? J : Lanes + J - S)...);
  const Vec high = __builtin_shufflevector(a, b, ((J & S) == 0 ? J + S : Lanes + J)...);
  a = low;
  b = high;
}

// rows[r][j] ↔ rows[j][r], in Lanes·log2(Lanes) two-register shuffles.
template <int Lanes, int S = Lanes / 2, typename Vec = typename VecOf<Lanes>::type>
__attribute__((always_inline)) inline void Transpose(Vec (&rows)[Lanes]) {
  if constexpr (S >= 1) {
#pragma GCC unroll 16
    for (int i = 0; i < Lanes; ++i) {
      if ((i & S) == 0) SwapBlocks<Lanes, S>(rows[i], rows[i + S], std::make_index_sequence<Lanes>{});
    }
    Transpose<Lanes, S / 2>(rows);
  }
}

// The input rows [first, last) of Lanes channels (planes `plane` floats apart, each row at src) into
// position-major order, dst[x · stride + c] = src[c · plane + x]: Lanes positions at a time through a
// register transpose, the rest one by one.
template <int Lanes, typename Vec = typename VecOf<Lanes>::type>
__attribute__((always_inline)) inline void ChannelsToPositions(const float* src, int64_t plane, int64_t first,
                                                               int64_t last, float* dst, int64_t stride) {
  int64_t x = first;
  for (; x + Lanes <= last; x += Lanes) {
    Vec rows[Lanes];
#pragma GCC unroll 16
    for (int c = 0; c < Lanes; ++c) std::memcpy(&rows[c], src + c * plane + x, sizeof(Vec));
    Transpose<Lanes>(rows);
#pragma GCC unroll 16
    for (int j = 0; j < Lanes; ++j) std::memcpy(dst + (x + j) * stride, &rows[j], sizeof(Vec));
  }
  for (; x < last; ++x) {
    for (int c = 0; c < Lanes; ++c) dst[x * stride + c] = src[c * plane + x];
  }
}

// acc [kRows, NV·Lanes] = d [kRows, L] · U [L, NV·Lanes], vector v of U's row l at base[v] + offset[l]:
// kRows·NV accumulators stay in registers while the positions stream through, each loaded vector of U
// feeding kRows rows of δ.
template <int Lanes, int NV, typename Vec = typename VecOf<Lanes>::type>
__attribute__((always_inline)) inline void Block(const float* d, int64_t positions, const float* const* base,
                                                 const int64_t* offset, Vec (&acc)[kRows][NV]) {
#pragma GCC unroll 16
  for (int64_t r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = Vec{};
  for (int64_t l = 0; l < positions; ++l) {
    Vec row[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) std::memcpy(&row[j], base[j] + offset[l], sizeof(Vec));
#pragma GCC unroll 16
    for (int64_t r = 0; r < kRows; ++r) {
      const float s = d[r * positions + l];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] += s * row[j];
    }
  }
}

// Where a block's results go when they are kept: out (rows of stride k) at columns [0, columns).
struct BlockOut {
  float* out = nullptr;
  int64_t k = 0, columns = 0;
};

// One block of kRows output channels by NV·Lanes columns: its squared norm, and its valid part written
// as `to` says when to.out is not null.
template <int Lanes, int NV, typename Vec = typename VecOf<Lanes>::type>
__attribute__((always_inline)) inline double BlockNorm(const float* d, int64_t positions, const float* const* base,
                                                       const int64_t* offset, int64_t rows, const BlockOut& to) {
  Vec acc[kRows][NV];
  Block<Lanes, NV>(d, positions, base, offset, acc);
  // One partial sum per row: four independent chains rather than one through every accumulator.
  Vec partial[kRows];
#pragma GCC unroll 16
  for (int64_t r = 0; r < kRows; ++r) {
    partial[r] = acc[r][0] * acc[r][0];
#pragma GCC unroll 4
    for (int j = 1; j < NV; ++j) partial[r] += acc[r][j] * acc[r][j];  // padding rows and columns are 0
  }
  const Vec squares = (partial[0] + partial[1]) + (partial[2] + partial[3]);
  float* out = to.out;
  const int64_t k = to.k;
  if (out != nullptr && to.columns == NV * Lanes) {
    // Whole vectors: stored as they are.
    for (int64_t r = 0; r < rows; ++r) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) std::memcpy(out + r * k + j * Lanes, &acc[r][j], sizeof(Vec));
    }
  } else if (out != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      float values[NV * Lanes];
      std::memcpy(values, acc[r], sizeof(values));
      std::memcpy(out + r * k, values, static_cast<size_t>(to.columns) * sizeof(float));
    }
  }
  double sum = 0;
  for (int i = 0; i < Lanes; ++i) sum += squares[i];
  return sum;
}

// U_i of one group into u [L, kp] from its zero-padded input planes: u[l, (c, kh, kw)] =
// padded[c, y·s + kh·d, x·s + kw·d]. KW > 0: kernels KW wide at dilation 1, whose rows of KW floats are
// fixed-size copies; KW = 0: any width and dilation.
template <int KW>
__attribute__((always_inline)) inline void Gather(const ConvShape& s, const float* padded, int64_t wp,
                                                  int64_t padded_plane, int64_t cg, int64_t kp, float* u) {
  const int64_t kw = KW > 0 ? KW : s.kernel[1];
  for (int64_t oy = 0; oy < s.out_height; ++oy) {
    for (int64_t ox = 0; ox < s.out_width; ++ox) {
      float* row = u + (oy * s.out_width + ox) * kp;
      const float* corner = padded + oy * s.stride[0] * wp + ox * s.stride[1];
      for (int64_t c = 0; c < cg; ++c) {
        for (int64_t kh = 0; kh < s.kernel[0]; ++kh) {
          const float* src = corner + c * padded_plane + kh * s.dilation[0] * wp;
          if constexpr (KW > 0) {
            std::memcpy(row, src, KW * sizeof(float));
          } else {
            for (int64_t i = 0; i < kw; ++i) row[i] = src[i * s.dilation[1]];
          }
          row += kw;
        }
      }
    }
  }
}

using GatherFn = void (*)(const ConvShape&, const float*, int64_t, int64_t, int64_t, int64_t, float*);

// The fixed-width gather for the common widths at dilation 1, the general one otherwise.
GatherFn PickGather(const ConvShape& s) {
  static constexpr GatherFn kByWidth[] = {Gather<0>, Gather<1>, Gather<0>, Gather<3>, Gather<4>,
                                          Gather<5>, Gather<0>, Gather<7>, Gather<8>};
  const int64_t width = s.kernel[1];
  return s.dilation[1] == 1 && width >= 1 && width <= 8 ? kByWidth[width] : Gather<0>;
}

// Whether Samples reads U channels-last for this shape and vector width.
bool ChannelsLast(const ConvShape& s, int64_t lanes) { return (s.channels / s.groups) % lanes == 0; }

// Samples [begin, end): per sample and group, δ_i's rows into d [⌈O/G⌉₄, L] (padding rows 0), U_i's
// rows located in one of two ways, then the blocks of kRows rows by up to MaxVectors vectors.
//   Channels-last (C/G a multiple of Lanes): the group's input is copied, zero-padded, as
//   [Hp, Wp, C/G]; U's columns are taken in the order (kh, kw, c), so that every vector of a row of U is
//   Lanes consecutive channels of one input position, read in place: no gather. g_i is written in that
//   column order too, [O/G, kh·kw, C/G] per group (ConvWeightPerSample says so; the norms and sums do not
//   depend on the order, and the caller permutes what it hands on).
//   Gathered (any other shape): u [L, kp] (kp = C/G·kh·kw rounded up to Lanes, padding columns 0) with
//   u[l, (c, kh, kw)] = padded[c, y·s + kh·d, x·s + kw·d], from a zero-padded copy of the planes.
template <int Lanes, int MaxVectors>
__attribute__((always_inline)) inline void Samples(const ConvShape& s, const float* input, const float* delta,
                                                   float* norms, float* grads, int64_t begin, int64_t end) {
  constexpr int64_t kLanes = Lanes;
  const int64_t cg = s.channels / s.groups, og = s.out / s.groups;
  const int64_t taps = s.kernel[0] * s.kernel[1];
  const int64_t k = cg * taps;
  const int64_t positions = s.out_height * s.out_width;
  const int64_t rows_padded = (og + kRows - 1) / kRows * kRows;
  const bool channels_last = ChannelsLast(s, kLanes);
  const int64_t kp = channels_last ? k : (k + kLanes - 1) / kLanes * kLanes;
  std::vector<float> d(static_cast<size_t>(rows_padded * positions), 0.0f);
  const int64_t plane = s.height * s.width;
  const int64_t wp = s.width + 2 * s.padding[1];
  const int64_t padded_plane = (s.height + 2 * s.padding[0]) * wp;
  std::vector<float> padded(static_cast<size_t>(cg * padded_plane), 0.0f);  // borders stay 0
  std::vector<float> u(channels_last ? 0 : static_cast<size_t>(positions * kp), 0.0f);
  // Per position l = (y, x), where its row of U starts relative to a column's base.
  std::vector<int64_t> offset(static_cast<size_t>(positions));
  for (int64_t oy = 0; oy < s.out_height; ++oy) {
    for (int64_t ox = 0; ox < s.out_width; ++ox) {
      const int64_t l = oy * s.out_width + ox;
      offset[static_cast<size_t>(l)] = channels_last ? (oy * s.stride[0] * wp + ox * s.stride[1]) * cg : l * kp;
    }
  }
  // Per vector of U's columns: its base.
  const int64_t vectors_total = kp / kLanes;
  std::vector<const float*> base(static_cast<size_t>(vectors_total));
  for (int64_t v = 0; v < vectors_total; ++v) {
    const int64_t column = v * kLanes;
    if (channels_last) {
      const int64_t tap = column / cg, kh = tap / s.kernel[1], kw = tap % s.kernel[1];
      base[v] = padded.data() + (kh * s.dilation[0] * wp + kw * s.dilation[1]) * cg + column % cg;
    } else {
      base[v] = u.data() + column;
    }
  }
  // Blocks of `width` vectors: 3 where that divides the columns and 4 does not (9 vectors: 3 + 3 + 3
  // rather than 4 + 4 + 1, whose last block feeds 4 FMAs per 4 broadcasts).
  const int64_t width = MaxVectors >= 4 && vectors_total % 4 != 0 && vectors_total % 3 == 0 ? 3 : MaxVectors;
  const GatherFn gather = PickGather(s);
  // Channels-last: the input rows some tap reads, and the columns from the first one read to the last
  // (a 1x1 stride-2 layer reads a quarter of its input); only those are copied, the rest of the padded
  // copy is never read. Columns between that no tap reads are copied along: the copy runs Lanes
  // columns at a time.
  std::vector<int64_t> rows_read;
  int64_t first_column = 0, last_column = 0;
  if (channels_last) {
    const auto read = [](int64_t size, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
      std::vector<char> used(static_cast<size_t>(size), 0);
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t t = 0; t < kernel; ++t) {
          const int64_t at = o * stride + t * dilation - padding;
          if (at >= 0 && at < size) used[static_cast<size_t>(at)] = 1;
        }
      }
      std::vector<int64_t> list;
      for (int64_t i = 0; i < size; ++i)
        if (used[static_cast<size_t>(i)]) list.push_back(i);
      return list;
    };
    rows_read = read(s.height, s.out_height, s.kernel[0], s.stride[0], s.padding[0], s.dilation[0]);
    const std::vector<int64_t> columns_read =
        read(s.width, s.out_width, s.kernel[1], s.stride[1], s.padding[1], s.dilation[1]);
    if (!columns_read.empty()) {
      first_column = columns_read.front();
      last_column = columns_read.back() + 1;
    }
  }
  for (int64_t i = begin; i < end; ++i) {
    double norm = 0;
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* x = input + (i * s.channels + g * cg) * plane;
      if (channels_last) {
        // Lanes channels at a time, through register transposes.
        for (const int64_t y : rows_read) {
          float* row = padded.data() + ((y + s.padding[0]) * wp + s.padding[1]) * cg;
          const float* src = x + y * s.width;
          for (int64_t c = 0; c < cg; c += kLanes) {
            ChannelsToPositions<Lanes>(src + c * plane, plane, first_column, last_column, row + c, cg);
          }
        }
      } else {
        for (int64_t c = 0; c < cg; ++c) {
          for (int64_t y = 0; y < s.height; ++y) {
            std::memcpy(padded.data() + c * padded_plane + (y + s.padding[0]) * wp + s.padding[1],
                        x + c * plane + y * s.width, static_cast<size_t>(s.width) * sizeof(float));
          }
        }
        gather(s, padded.data(), wp, padded_plane, cg, kp, u.data());
      }
      const float* di = delta + (i * s.out + g * og) * positions;
      std::memcpy(d.data(), di, static_cast<size_t>(og * positions) * sizeof(float));
      float* out = grads == nullptr ? nullptr : grads + (i * s.out + g * og) * k;
      // Column blocks outside: one block of U's columns stays in L1 for every row block.
      for (int64_t j = 0; j < kp; j += width * kLanes) {
        const int64_t vectors = std::min<int64_t>(width, (kp - j) / kLanes);
        const int64_t v0 = j / kLanes;
        const float* const* bases = base.data() + v0;
        for (int64_t o = 0; o < og; o += kRows) {
          const int64_t rows = std::min(kRows, og - o);
          const float* dr = d.data() + o * positions;
          BlockOut to;
          if (out != nullptr) {
            to.k = k;
            to.out = out + o * k + j;
            to.columns = std::min(k - j, vectors * kLanes);
          }
          const int64_t* off = offset.data();
          if (MaxVectors >= 4 && vectors == 4) {
            norm += BlockNorm<Lanes, (MaxVectors >= 4 ? 4 : 1)>(dr, positions, bases, off, rows, to);
          } else if (MaxVectors >= 3 && vectors == 3) {
            norm += BlockNorm<Lanes, (MaxVectors >= 3 ? 3 : 1)>(dr, positions, bases, off, rows, to);
          } else if (vectors == 2) {
            norm += BlockNorm<Lanes, 2>(dr, positions, bases, off, rows, to);
          } else {
            norm += BlockNorm<Lanes, 1>(dr, positions, bases, off, rows, to);
          }
        }
      }
      // The next group's rows beyond O/G stay 0: only the first og rows were written.
    }
    if (norms != nullptr) norms[i] = static_cast<float>(norm);
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

// The variant this CPU runs and its Lanes.
std::pair<SamplesFn, int64_t> PickSamples() {
#if defined(__x86_64__)
  switch (MaxIsa()) {
    case Isa::kAvx512:
      return {SamplesAvx512, 16};
    case Isa::kAvx2:
      return {SamplesAvx2, 8};
    default:
      break;
  }
#endif
  return {SamplesBaseline, 4};
}

}  // namespace

bool ConvWeightPerSample(const ConvShape& shape, const float* input, const float* delta, float* norms, float* grads) {
  const auto [samples, lanes] = PickSamples();
  at::parallel_for(0, shape.batch, 1,
                   [&](int64_t begin, int64_t end) { samples(shape, input, delta, norms, grads, begin, end); });
  return ChannelsLast(shape, lanes);
}

}  // namespace bastion::core::dp::grad_sample
