// aten::embedding(weight [V, D], indices [B, ...], padding_idx, scale_grad_by_freq, sparse):
// g_i(W)[v] = Σ_{t: x_it = v} δ_it, with the padding_idx row always zero. The sparse path never
// builds [B, V, D]: ||g_i||² sums, over the distinct tokens of sample i, the squared norm of their
// summed gradients (each sample's rows grouped by token), and the clipped sum is
// Σ_i c_i δ_it added into row x_it of one [V, D] tensor. Both are plain loops over the B·T rows
// (float and double; other dtypes take the tensor-op form), parallel over samples and vocabulary rows,
// the float ones built for each instruction set (cpu_isa.h). The loops are always_inline: a variant
// that calls out of line runs the baseline build (test/addon/isa-variants.test.ts checks that none does).
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "core/dp/grad_sample/cpu_isa.h"
#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {
namespace {

constexpr const char* kRule = "embedding";

// Σ_d x_d², with independent partial sums (a single chain is bound by the add latency).
template <typename T>
__attribute__((always_inline)) inline double SquaredNorm(const T* x, int64_t n) {
  T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8) {
    for (int k = 0; k < 8; ++k) part[k] += x[d + k] * x[d + k];
  }
  double total = 0;
  for (; d < n; ++d) total += static_cast<double>(x[d] * x[d]);
  for (int k = 0; k < 8; ++k) total += static_cast<double>(part[k]);
  return total;
}

// The same for float in 32 partial sums (two AVX-512 registers, four AVX2 ones), added pairwise.
typedef float Floats16 __attribute__((vector_size(16 * sizeof(float))));
typedef float Floats8 __attribute__((vector_size(8 * sizeof(float))));
typedef float Floats4 __attribute__((vector_size(4 * sizeof(float))));
__attribute__((always_inline)) inline double SquaredNorm(const float* x, int64_t n) {
  Floats16 a{}, b{};
  int64_t d = 0;
  for (; d + 32 <= n; d += 32) {
    Floats16 u, v;
    std::memcpy(&u, x + d, sizeof(u));
    std::memcpy(&v, x + d + 16, sizeof(v));
    a += u * u;
    b += v * v;
  }
  const Floats16 s16 = a + b;
  const Floats8 s8 = __builtin_shufflevector(s16, s16, 0, 1, 2, 3, 4, 5, 6, 7) +
                     __builtin_shufflevector(s16, s16, 8, 9, 10, 11, 12, 13, 14, 15);
  const Floats4 s4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3) + __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
  double total = static_cast<double>((s4[0] + s4[2]) + (s4[1] + s4[3]));
  for (; d < n; ++d) total += static_cast<double>(x[d] * x[d]);
  return total;
}

// A batch's tokens [B, T] and their output gradients' rows [B, T, D], as the loops read them.
template <typename T>
struct Rows {
  const int64_t* tokens;
  const T* delta;
  int64_t rows;  // T
  int64_t dim;   // D
  int64_t padding;
};

// ||g_b||² into out[b] for the samples b in [begin, end). Per sample, its tokens' rows are grouped by
// token with a small open-addressing table (a sort of the tokens cost most of the norms): a token seen
// once adds its row's squared norm, a repeated one the squared norm of its rows' sum.
template <typename T>
__attribute__((always_inline)) inline void SampleNorms(const Rows<T>& r, int64_t begin, int64_t end, T* out) {
  size_t capacity = 16;
  while (capacity < 2 * static_cast<size_t>(r.rows)) capacity *= 2;
  std::vector<int64_t> key(capacity);
  std::vector<int32_t> count(capacity);
  std::vector<int32_t> first(capacity);
  std::vector<int64_t> slot_of(static_cast<size_t>(r.rows));
  std::vector<T> sum(static_cast<size_t>(r.dim));
  for (int64_t b = begin; b < end; ++b) {
    const int64_t* token = r.tokens + b * r.rows;
    std::fill(key.begin(), key.end(), -1);  // token ids are ≥ 0
    for (int64_t t = 0; t < r.rows; ++t) {
      if (token[t] == r.padding) {
        slot_of[static_cast<size_t>(t)] = -1;
        continue;
      }
      size_t slot =
          static_cast<size_t>((static_cast<uint64_t>(token[t]) * 0x9E3779B97F4A7C15ull) >> 40) & (capacity - 1);
      while (key[slot] != -1 && key[slot] != token[t]) slot = (slot + 1) & (capacity - 1);
      if (key[slot] == -1) {
        key[slot] = token[t];
        count[slot] = 0;
        first[slot] = static_cast<int32_t>(t);
      }
      ++count[slot];
      slot_of[static_cast<size_t>(t)] = static_cast<int64_t>(slot);
    }
    double total = 0;
    for (int64_t t = 0; t < r.rows; ++t) {
      const int64_t slot = slot_of[static_cast<size_t>(t)];
      if (slot < 0) continue;
      const T* row = r.delta + (b * r.rows + t) * r.dim;
      if (count[static_cast<size_t>(slot)] == 1) {
        total += SquaredNorm(row, r.dim);
      } else if (first[static_cast<size_t>(slot)] == t) {
        std::copy(row, row + r.dim, sum.begin());
        for (int64_t u = t + 1; u < r.rows; ++u) {
          if (slot_of[static_cast<size_t>(u)] != slot) continue;
          const T* other = r.delta + (b * r.rows + u) * r.dim;
          for (int64_t d = 0; d < r.dim; ++d) sum[static_cast<size_t>(d)] += other[d];
        }
        total += SquaredNorm(sum.data(), r.dim);
      }
    }
    out[b] = static_cast<T>(total);
  }
}

// out[x_i] += c_b · δ_i for the rows i of the batch whose token is in [first, last) (and not padding),
// b the sample of row i: a thread that owns those vocabulary rows writes them alone.
template <typename T>
__attribute__((always_inline)) inline void AddRows(const Rows<T>& r, int64_t batch, const T* factor, int64_t first,
                                                   int64_t last, T* out) {
  const int64_t count = batch * r.rows;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t token = r.tokens[i];
    if (token < first || token >= last || token == r.padding) continue;
    const T c = factor[i / r.rows];
    const T* __restrict row = r.delta + i * r.dim;
    T* __restrict o = out + token * r.dim;
    for (int64_t d = 0; d < r.dim; ++d) o[d] += c * row[d];
  }
}

// The float loops for each instruction set (cpu_isa.h); double runs the portable build.
#if defined(__x86_64__)
__attribute__((target("arch=x86-64-v3"))) void SampleNormsAvx2(const Rows<float>& r, int64_t begin, int64_t end,
                                                               float* out) {
  SampleNorms(r, begin, end, out);
}
__attribute__((target("arch=x86-64-v4"))) void SampleNormsAvx512(const Rows<float>& r, int64_t begin, int64_t end,
                                                                 float* out) {
  SampleNorms(r, begin, end, out);
}
__attribute__((target("arch=x86-64-v3"))) void AddRowsAvx2(const Rows<float>& r, int64_t batch, const float* factor,
                                                           int64_t first, int64_t last, float* out) {
  AddRows(r, batch, factor, first, last, out);
}
__attribute__((target("arch=x86-64-v4"))) void AddRowsAvx512(const Rows<float>& r, int64_t batch, const float* factor,
                                                             int64_t first, int64_t last, float* out) {
  AddRows(r, batch, factor, first, last, out);
}
#endif

// The float loops' variants for this CPU (one switch for both).
struct FloatLoops {
  void (*norms)(const Rows<float>&, int64_t, int64_t, float*);
  void (*rows)(const Rows<float>&, int64_t, const float*, int64_t, int64_t, float*);
};

FloatLoops PickFloatLoops() {
#if defined(__x86_64__)
  switch (MaxIsa()) {
    case Isa::kAvx512:
      return {SampleNormsAvx512, AddRowsAvx512};
    case Isa::kAvx2:
      return {SampleNormsAvx2, AddRowsAvx2};
    default:
      break;
  }
#endif
  return {SampleNorms<float>, AddRows<float>};
}

void RunSampleNorms(const Rows<float>& r, int64_t begin, int64_t end, float* out) {
  PickFloatLoops().norms(r, begin, end, out);
}
void RunSampleNorms(const Rows<double>& r, int64_t begin, int64_t end, double* out) { SampleNorms(r, begin, end, out); }

void RunAddRows(const Rows<float>& r, int64_t batch, const float* factor, int64_t first, int64_t last, float* out) {
  PickFloatLoops().rows(r, batch, factor, first, last, out);
}
void RunAddRows(const Rows<double>& r, int64_t batch, const double* factor, int64_t first, int64_t last, double* out) {
  AddRows(r, batch, factor, first, last, out);
}

class EmbeddingBatch final : public LayerBatch {
 public:
  EmbeddingBatch(const at::Tensor& indices, const at::Tensor& delta, int64_t vocabulary, int64_t padding_idx)
      : batch_(indices.size(0)), vocabulary_(vocabulary), padding_idx_(padding_idx) {
    dim_ = delta.size(-1);
    tokens_ = indices.reshape({batch_, -1}).to(at::kLong).contiguous();
    rows_ = delta.reshape({batch_, -1, dim_}).contiguous();
    if (rows_.size(1) != tokens_.size(1)) ShapeError(kRule, "indices and output gradient do not match");
    const at::ScalarType type = rows_.scalar_type();
    loops_ = type == at::kFloat || type == at::kDouble;
  }

  at::Tensor PerSample(size_t /*slot*/) override {
    const at::Tensor keys = (tokens_ + at::arange(batch_, tokens_.options()).unsqueeze(1) * vocabulary_).reshape({-1});
    at::Tensor g = at::zeros({batch_ * vocabulary_, dim_}, rows_.options());
    g.index_add_(0, keys, MaskedRows().reshape({-1, dim_}));
    return g.view({batch_, vocabulary_, dim_});
  }

  at::Tensor NormSquared(size_t /*slot*/) override {
    if (!loops_) return NormSquaredOps();
    at::Tensor norms = at::empty({batch_}, rows_.options());
    AT_DISPATCH_FLOATING_TYPES(rows_.scalar_type(), "embedding_norms", [&] {
      const Rows<scalar_t> r = View<scalar_t>();
      scalar_t* out = norms.data_ptr<scalar_t>();
      at::parallel_for(0, batch_, 16, [&](int64_t begin, int64_t end) { RunSampleNorms(r, begin, end, out); });
    });
    return norms;
  }

  at::Tensor WeightedSum(size_t /*slot*/, const at::Tensor& factors) override {
    if (!loops_) return WeightedSumOps(factors);
    at::Tensor sum = at::zeros({vocabulary_, dim_}, rows_.options());
    AT_DISPATCH_FLOATING_TYPES(rows_.scalar_type(), "embedding_weighted_sum", [&] {
      const Rows<scalar_t> r = View<scalar_t>();
      const at::Tensor c = factors.to(rows_.scalar_type()).contiguous();
      const scalar_t* factor = c.data_ptr<scalar_t>();
      scalar_t* out = sum.data_ptr<scalar_t>();
      // Each thread owns a range of vocabulary rows, so no two write the same element.
      at::parallel_for(0, vocabulary_, 4096,
                       [&](int64_t first, int64_t last) { RunAddRows(r, batch_, factor, first, last, out); });
    });
    return sum;
  }

 private:
  template <typename T>
  Rows<T> View() const {
    return {tokens_.data_ptr<int64_t>(), rows_.data_ptr<T>(), tokens_.size(1), dim_, padding_idx_};
  }

  // [B, T, D], zero at padding_idx.
  at::Tensor MaskedRows() const {
    if (padding_idx_ < 0) return rows_;
    return rows_ * tokens_.ne(padding_idx_).unsqueeze(2).to(rows_.scalar_type());
  }

  at::Tensor NormSquaredOps() const {
    const at::Tensor keys = (tokens_ + at::arange(batch_, tokens_.options()).unsqueeze(1) * vocabulary_).reshape({-1});
    const auto [unique, inverse, counts] = at::_unique2(keys, /*sorted=*/true, /*return_inverse=*/true);
    at::Tensor sums = at::zeros({unique.size(0), dim_}, rows_.options());
    sums.index_add_(0, inverse.reshape({-1}), MaskedRows().reshape({-1, dim_}));
    const at::Tensor sample = at::div(unique, vocabulary_, "floor");
    return at::zeros({batch_}, rows_.options()).index_add_(0, sample, sums.pow(2).sum(1));
  }

  at::Tensor WeightedSumOps(const at::Tensor& factors) const {
    const at::Tensor scaled = MaskedRows() * factors.to(rows_.scalar_type()).view({batch_, 1, 1});
    at::Tensor sum = at::zeros({vocabulary_, dim_}, rows_.options());
    return sum.index_add_(0, tokens_.reshape({-1}), scaled.reshape({-1, dim_}));
  }

  int64_t batch_, vocabulary_, padding_idx_, dim_ = 0;
  bool loops_ = false;
  at::Tensor tokens_;  // [B, T] int64, contiguous
  at::Tensor rows_;    // [B, T, D], contiguous
};

class EmbeddingLayer final : public Layer {
 public:
  EmbeddingLayer(int64_t vocabulary, int64_t padding_idx) : vocabulary_(vocabulary), padding_idx_(padding_idx) {}

  std::string Rule() const override { return kRule; }
  bool HasGhost() const override { return true; }

  double Cost(Path path, const at::Tensor& a, const at::Tensor& delta) const override {
    const double batch = static_cast<double>(a.size(0));
    const double dim = static_cast<double>(delta.size(-1));
    if (path == Path::kMaterialize) return 3.0 * batch * static_cast<double>(vocabulary_) * dim;
    return 4.0 * static_cast<double>(delta.numel()) + 8.0 * static_cast<double>(a.numel());  // row sums + sorts
  }

  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path /*path*/) const override {
    if (a.dim() < 1 || delta.dim() != a.dim() + 1 || a.size(0) != delta.size(0)) {
      ShapeError(kRule, "expected batched indices and an output gradient with one more dimension");
    }
    // Both paths give the same numbers from the same rows; the path only picks which methods run.
    return std::make_unique<EmbeddingBatch>(a, delta, vocabulary_, padding_idx_);
  }

 private:
  int64_t vocabulary_, padding_idx_;
};

}  // namespace

MatchResult MatchEmbedding(const OpView& op) {
  if (op.args.size() < 4 || op.args[0].kind != OpArg::Kind::kParameter) return {};
  if (op.args[0].shape.size() != 2) return {nullptr, "aten::embedding with a weight that is not 2-D"};
  const auto padding_idx = ConstantInt(op.args[2]);
  const auto scale = ConstantBool(op.args[3]);
  if (!padding_idx) return {nullptr, "aten::embedding with a non-constant padding_idx"};
  if (!scale || *scale) return {nullptr, "aten::embedding with scale_grad_by_freq"};
  auto layer = std::make_unique<EmbeddingLayer>(op.args[0].shape[0], *padding_idx);
  layer->activation_arg = 1;
  AddSlotIfParameter(*layer, op, 0);
  return {std::move(layer), ""};
}

}  // namespace bastion::core::dp::grad_sample
