// 1-D and 2-D convolutions, scripted (aten::conv1d / aten::conv2d, padding as ints or "valid"/"same")
// and traced (aten::_convolution, aten::convolution, not transposed), with any stride, padding,
// dilation and groups (a 1-D convolution is a 2-D one of height 1). Per group, g_i(W) = δ_i U_iᵀ with
// U_i [C·k, L] the unfolded input, and g_i(b) = Σ_l δ_il.
// Materialised path: the g_i(W) of the batch, [B, O·C/G·k], by the per-sample kernel of
// conv_kernel.h (float32, where it is the faster form) or, in chunks of samples, as the weight
// gradient of one convolution with the chunk folded into the groups (input [1, S·C, H, W], output
// gradient [1, S·O, Ho, Wo], S·G groups), which oneDNN computes without unfolding anything; the norms
// and the clipped sum (Σ over chunks of g_chunkᵀ c_chunk) use the same gradients, except where the
// kernel runs and keeping the B gradients would cost more memory or time than it saves
// (KeepsGradients): there it takes the norms alone, keeping a and δ instead, and the clipped sum is
// computed as on the ghost path. Ghost path: norms as <U_iᵀU_i, δ_iᵀδ_i> over L×L Gram matrices
// (im2col), which only pays off for small L (the cost rule decides), and the clipped sum as the
// ordinary weight gradient of the convolution for the output gradient c_i δ_i.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/dp/grad_sample/conv_kernel.h"
#include "core/dp/grad_sample/cpu_isa.h"
#include "core/dp/grad_sample/layer.h"

namespace bastion::core::dp::grad_sample {
namespace {

struct ConvConfig {
  int64_t spatial = 2;  // 1 or 2
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  std::vector<int64_t> weight_shape;  // [O, C/G, k...], empty when the weight is not known
};

std::string RuleName(const ConvConfig& config) { return config.spatial == 1 ? "conv1d" : "conv2d"; }

// One batch of a convolution layer in 2-D form: input a [B, C, H, W], output gradient d [B, O, Ho, Wo]
// (a 1-D convolution gets a height of 1).
struct ConvInputs {
  at::Tensor a, d;
  int64_t batch, groups, og, positions;
  std::vector<int64_t> kernel, stride, padding, dilation;  // 2-D
};

// Samples per batched-groups convolution: a fixed chunk (the last one zero-padded) gives the backends
// one problem shape whatever the physical batch size (oneDNN builds and caches a kernel per shape;
// Poisson sampling makes every batch size different), and keeps each chunk's gradients small.
constexpr int64_t kChunk = 32;

// Output positions up to which the per-sample kernel (float32) takes layers with several input
// channels per group whatever their number. On AVX-512 it runs the MNIST CNN's layers (28x28 input on
// one channel, and a 5x5 output) 3–5x faster than oneDNN's batched-groups forms. With a multiple of
// 16 input channels per group it reads U in place (channels-last, no gather) and takes layers of any
// size on AVX-512: on the GroupNorm ResNet's 3x3 layers with 14x14 and 28x28 outputs it measured as
// fast as oneDNN or up to 1.6x faster (issue 17); on AVX2 oneDNN keeps the larger layers.
constexpr int64_t kKernelMaxPositions = 64;
constexpr int64_t kKernelChunkBytes = int64_t{4} << 20;

// Where the kernel takes a layer, its g_i are kept when they take no more memory than a_i and δ_i,
// which they replace, and up to kKeepMaxRatio times that when the run's spare memory
// (LayerBatch::spare_bytes) covers the difference. Keeping them costs a write and a read of B·|g_i|
// floats, where taking the norms alone costs the convolution's weight gradient once more for the
// clipped sum. On the GroupNorm ResNet's 7x7 layers (|g_i| 2–6x |a_i| + |δ_i|, 20 MB more at B = 128)
// keeping them took the clipped sums from 2.65 to 1.3 ms on two threads, and the private step from
// 1.20 to 1.15–1.17 of the non-private one (1.16 to 1.13 on one thread); the MNIST CNN's second layer
// (2.3x, 5 MB more at B = 256) went from 1.15 to 1.12 on one thread (issue 17). Far larger gradients
// (few output positions) cost more to write and read than to compute again.
constexpr int64_t kKeepMaxRatio = 8;

// Columns of kept gradients below which their clipped sum runs on one thread.
constexpr int64_t kSumColumnsPerThread = 16384;

class ConvBatch final : public LayerBatch {
 public:
  ConvBatch(ConvInputs inputs, std::vector<bool> is_weight, std::vector<int64_t> weight_shape, bool ghost)
      : x_(std::move(inputs)),
        is_weight_(std::move(is_weight)),
        weight_shape_(std::move(weight_shape)),
        ghost_(ghost),
        dtype_(x_.d.scalar_type()) {}

  at::Tensor PerSample(size_t slot) override {
    if (!is_weight_.at(slot)) return Bias();
    Materialize();
    std::vector<int64_t> shape{x_.batch};
    shape.insert(shape.end(), weight_shape_.begin(), weight_shape_.end());
    return InWeightOrder(chunks_.size() == 1 ? chunks_[0] : at::cat(chunks_)).view(shape);  // [B, O, C/G, k...]
  }

  at::Tensor NormSquared(size_t slot) override {
    if (!is_weight_.at(slot)) return LayerBatch::NormSquared(slot);
    if (!ghost_ && !weight_shape_.empty() && KernelEligible() && !KeepsGradients()) {
      // The kernel takes the norms alone, and the clipped sum is the convolution's weight gradient for
      // c_i δ_i (WeightedSum).
      const at::Tensor a = x_.a.contiguous(), d = x_.d.contiguous();
      x_.a = a;
      x_.d = d;
      norms_ = at::empty({x_.batch}, d.options());
      ConvWeightPerSample(Shape(a, d), a.data_ptr<float>(), d.data_ptr<float>(), norms_.data_ptr<float>(), nullptr);
      return norms_;
    }
    if (!ghost_) {
      Materialize();
      // The gradients (and the bias's sums) are all the rest needs: the input and output gradient go
      // now, so that the layers' activations leave memory one by one as the norms are taken.
      if (std::find(is_weight_.begin(), is_weight_.end(), false) != is_weight_.end()) Bias();
      x_.a = at::Tensor();
      x_.d = at::Tensor();
      return norms_;
    }
    Unfold();
    const at::Tensor gram_u = at::matmul(u_.transpose(2, 3), u_);  // [B, G, L, L]
    const at::Tensor gram_d = at::matmul(d_.transpose(2, 3), d_);
    return (gram_u * gram_d).sum(at::IntArrayRef{1, 2, 3});
  }

  at::Tensor WeightedSum(size_t slot, const at::Tensor& factors) override {
    const at::Tensor c = factors.to(dtype_);
    if (!is_weight_.at(slot)) return at::mv(Bias().t(), c);  // [O]
    if (!chunks_.empty()) {
      // Materialised: Σ over chunks of g_chunkᵀ [O·K, n] c_chunk [n], from the gradients the norms used
      // (a matrix-vector product, a third faster than the same sum as a [1, n] x [n, O·K] one), in
      // ranges of columns over the intra-op threads (OpenBLAS runs on one): on two threads the
      // GroupNorm ResNet's 64x64x3x3 sum took 0.52–0.60 ms rather than 0.95, the same numbers.
      const int64_t columns = chunks_[0].size(1);
      const at::Tensor sum = at::zeros({columns}, chunks_[0].options());
      at::parallel_for(0, columns, kSumColumnsPerThread, [&](int64_t first, int64_t last) {
        at::Tensor out = sum.narrow(0, first, last - first);
        int64_t begin = 0;
        for (const at::Tensor& chunk : chunks_) {
          const int64_t n = chunk.size(0);
          out.add_(at::mv(chunk.narrow(1, first, last - first).t(), c.narrow(0, begin, n)));
          begin += n;
        }
      });
      return InWeightOrder(sum).view(weight_shape_);
    }
    // Ghost, or norms the kernel took alone: the ordinary weight gradient of the convolution for the
    // output gradient c_i δ_i, by oneDNN (3–16 % faster than the kernel's blocks run again over c_i δ_i,
    // on the GroupNorm ResNet's 7x7 layers before they kept their gradients). Only the weight's shape
    // [O, C/G, kh, kw] matters: it is never read.
    const at::Tensor weight =
        at::empty({x_.groups * x_.og, x_.a.size(1) / x_.groups, x_.kernel[0], x_.kernel[1]}, x_.d.options());
    const at::Tensor grad = std::get<1>(at::convolution_backward(
        x_.d * c.view({x_.batch, 1, 1, 1}), x_.a, weight, c10::nullopt, x_.stride, x_.padding, x_.dilation,
        /*transposed=*/false, /*output_padding=*/{0, 0}, x_.groups, {false, true, false}));
    return grad.reshape(weight_shape_);
  }

 private:
  at::Tensor Bias() {
    if (!bias_.defined()) bias_ = x_.d.sum(at::IntArrayRef{2, 3});  // [B, O]
    return bias_;
  }

  // Whether the batch's g_i stay in memory from the norms to the clipped sum (see kKeepMaxRatio),
  // decided once per batch: the memory it spends is the run's.
  bool KeepsGradients() {
    if (keeps_gradients_) return *keeps_gradients_;
    const int64_t gradient = x_.d.size(1) * (x_.a.size(1) / x_.groups) * x_.kernel[0] * x_.kernel[1];
    const int64_t held = x_.a[0].numel() + x_.d[0].numel();
    bool keep = gradient <= held;
    if (!keep && gradient <= kKeepMaxRatio * held && spare_bytes) {
      const int64_t extra = x_.batch * (gradient - held) * static_cast<int64_t>(sizeof(float));
      if (extra <= *spare_bytes) {
        *spare_bytes -= extra;
        keep = true;
      }
    }
    keeps_gradients_ = keep;
    return keep;
  }

  // Whether the kernel of conv_kernel.h takes this layer (see kKernelMaxPositions).
  bool KernelEligible() const {
    return x_.d.scalar_type() == at::kFloat && x_.a.scalar_type() == at::kFloat &&
           (x_.a.size(1) == x_.groups || x_.positions <= kKernelMaxPositions ||
            ((x_.a.size(1) / x_.groups) % 16 == 0 && MaxIsa() == Isa::kAvx512));
  }
  ConvShape Shape(const at::Tensor& a, const at::Tensor& d) const {
    return ConvShape{x_.batch,
                     a.size(1),
                     a.size(2),
                     a.size(3),
                     d.size(1),
                     d.size(2),
                     d.size(3),
                     x_.groups,
                     {x_.kernel[0], x_.kernel[1]},
                     {x_.stride[0], x_.stride[1]},
                     {x_.padding[0], x_.padding[1]},
                     {x_.dilation[0], x_.dilation[1]}};
  }
  // chunks_ (g_i(W) [n, O·C/G·k] per chunk, in sample order) and norms_ [B], once per batch: chunks of
  // at most kKernelChunkBytes by the kernel where KernelEligible; otherwise chunks of kChunk samples by
  // oneDNN (ChunkWeight).
  void Materialize() {
    if (!chunks_.empty()) return;
    const bool kernel = KernelEligible();
    if (!kernel) {
      std::vector<at::Tensor> norms;
      for (int64_t begin = 0; begin < x_.batch; begin += kChunk) {
        chunks_.push_back(ChunkWeight(begin));
        norms.push_back(chunks_.back().square().sum(1));
      }
      norms_ = norms.size() == 1 ? norms[0] : at::cat(norms);
      return;
    }
    const at::Tensor a = x_.a.contiguous(), d = x_.d.contiguous();
    const ConvShape shape = Shape(a, d);
    const int64_t columns = (a.size(1) / x_.groups) * x_.kernel[0] * x_.kernel[1];
    const int64_t row = d.size(1) * columns;
    // Chunks of at most kKernelChunkBytes of gradients: blocks that size come back from the heap
    // step after step, where larger ones would be fresh pages (mmap) every step.
    const int64_t chunk =
        std::clamp<int64_t>(kKernelChunkBytes / (row * static_cast<int64_t>(sizeof(float))), 1, x_.batch);
    norms_ = at::empty({x_.batch}, d.options());
    for (int64_t begin = 0; begin < x_.batch; begin += chunk) {
      ConvShape part = shape;
      part.batch = std::min(chunk, x_.batch - begin);
      at::Tensor grads = at::empty({part.batch, row}, d.options());
      tap_order_ = ConvWeightPerSample(part, a.data_ptr<float>() + begin * a.stride(0),
                                       d.data_ptr<float>() + begin * d.stride(0), norms_.data_ptr<float>() + begin,
                                       grads.data_ptr<float>());
      chunks_.push_back(std::move(grads));
    }
  }

  // g_i(W) of the samples [begin, begin + kChunk) ∩ [0, B), [n, O·C/G·k]: the weight gradient of one
  // convolution with the chunk folded into the groups (input [1, S·C, H, W], output gradient
  // [1, S·O, Ho, Wo], S·G groups), which the CPU backends compute without unfolding the input.
  // Chunks are computed one after another, each kernel using the intra-op threads itself: chunks
  // spread over threads with at::parallel_for gave wrong gradients for half the samples on two threads
  // (libtorch 1.13's convolution kernels called inside an OpenMP parallel region). The per-sample
  // tests run on two threads to catch this.
  at::Tensor ChunkWeight(int64_t begin) const {
    const int64_t n = std::min(kChunk, x_.batch - begin);
    const int64_t out = x_.groups * x_.og;
    const int64_t channels = x_.a.size(1);
    at::Tensor a = x_.a.narrow(0, begin, n);
    at::Tensor d = x_.d.narrow(0, begin, n);
    if (n < kChunk) {
      at::Tensor padded_a = at::zeros({kChunk, channels, a.size(2), a.size(3)}, a.options());
      at::Tensor padded_d = at::zeros({kChunk, out, d.size(2), d.size(3)}, d.options());
      padded_a.narrow(0, 0, n).copy_(a);
      padded_d.narrow(0, 0, n).copy_(d);
      a = padded_a;
      d = padded_d;
    }
    if (channels == x_.groups) {
      // One input channel per group (a first layer on one channel, a depthwise convolution): the
      // weight gradient as a forward convolution of the input (channels as groups) with δ as the
      // kernel, dilated by the stride, strided by the dilation: gW[o, kh, kw] =
      // Σ_yx δ[o, y, x] x[y·s + kh·d − p, x·s + kw·d − p]. oneDNN runs this form faster. On AVX-512
      // (Zen 5, oneDNN 2.6) it still runs as x64:gemm:jit, ~9 ms of the MNIST CNN's ~17 ms private
      // overhead at B = 256; the folded backward (gemm:jit too), im2col + bmm and a depthwise
      // expansion (gemm:jit backward, 8x slower) measured slower (issue 17).
      const at::Tensor input = a.contiguous().view({1, kChunk * channels, a.size(2), a.size(3)});
      const at::Tensor kernel = d.contiguous().view({kChunk * out, 1, d.size(2), d.size(3)});
      at::Tensor grad = at::conv2d(input, kernel, {}, x_.dilation, x_.padding, x_.stride, kChunk * x_.groups);
      // [1, S·O, ≥kh, ≥kw]: positions past the kernel are those the strided forward never reached.
      if (grad.size(2) >= x_.kernel[0] && grad.size(3) >= x_.kernel[1]) {
        grad = grad.narrow(2, 0, x_.kernel[0]).narrow(3, 0, x_.kernel[1]).reshape({kChunk, -1});
        return n < kChunk ? grad.narrow(0, 0, n) : grad;
      }
    }
    const at::Tensor input = a.contiguous().view({1, kChunk * channels, a.size(2), a.size(3)});
    const at::Tensor grad_output = d.contiguous().view({1, kChunk * out, d.size(2), d.size(3)});
    // Only its shape matters for the weight gradient: it is never read.
    const at::Tensor weight =
        at::empty({kChunk * out, channels / x_.groups, x_.kernel[0], x_.kernel[1]}, x_.d.options());
    const at::Tensor grad = std::get<1>(at::convolution_backward(
        grad_output, input, weight, c10::nullopt, x_.stride, x_.padding, x_.dilation, /*transposed=*/false,
        /*output_padding=*/{0, 0}, kChunk * x_.groups, {false, true, false}));
    const at::Tensor rows = grad.view({kChunk, -1});
    return n < kChunk ? rows.narrow(0, 0, n) : rows;
  }

  // U [B, G, Kg, L] and D [B, G, Og, L] for the Gram matrices.
  void Unfold() {
    if (u_.defined()) return;
    const at::Tensor unfolded = at::im2col(x_.a, x_.kernel, x_.dilation, x_.padding, x_.stride);  // [B, C·k, L]
    if (unfolded.size(2) != x_.positions)
      ShapeError(weight_shape_.size() == 3 ? "conv1d" : "conv2d", "unfolded positions do not match the output");
    const int64_t kg = unfolded.size(1) / x_.groups;
    u_ = unfolded.view({x_.batch, x_.groups, kg, x_.positions});
    d_ = x_.d.reshape({x_.batch, x_.groups, x_.og, x_.positions});
  }

  ConvInputs x_;
  std::vector<bool> is_weight_;
  std::vector<int64_t> weight_shape_;
  bool ghost_;
  at::ScalarType dtype_;
  bool tap_order_ = false;  // chunks_ hold each group's columns as (kh, kw, c), the kernel's channels-last form

  // Rows of O·C/G·k gradient columns, [..., O·C/G·k], in the weight's order (c, kh, kw) per group.
  at::Tensor InWeightOrder(const at::Tensor& rows) const {
    if (!tap_order_) return rows;
    std::vector<int64_t> shape = rows.sizes().vec();
    // weight_shape_ is [O, C/G, k...]: the input and output gradient may be gone by now.
    int64_t taps = 1;
    for (size_t i = 2; i < weight_shape_.size(); ++i) taps *= weight_shape_[i];
    std::vector<int64_t> split(shape.begin(), shape.end() - 1);
    split.insert(split.end(), {weight_shape_[0], taps, weight_shape_[1]});
    return rows.reshape(split).transpose(-1, -2).reshape(shape);
  }
  at::Tensor bias_;                      // [B, O], once computed
  std::vector<at::Tensor> chunks_;       // materialised path: g_i(W) per chunk, [n, O·C/G·k]
  at::Tensor norms_;                     // materialised path: ||g_i(W)||² [B]
  std::optional<bool> keeps_gradients_;  // KeepsGradients, once decided
  at::Tensor u_, d_;                     // ghost only
};

class ConvLayer final : public Layer {
 public:
  explicit ConvLayer(ConvConfig config) : config_(std::move(config)) {}

  std::string Rule() const override { return RuleName(config_); }
  bool HasGhost() const override { return true; }

  double Cost(Path path, const at::Tensor& a, const at::Tensor& delta) const override {
    if (config_.weight_shape.empty() || delta.dim() < 2) return path == Path::kMaterialize ? 0.0 : 1e300;
    const double batch = static_cast<double>(delta.size(0));
    const double out = static_cast<double>(delta.size(1));
    const double positions = static_cast<double>(delta.numel()) / std::max(1.0, batch * out);
    double k = 1;  // C/G · kernel elements
    for (size_t i = 1; i < config_.weight_shape.size(); ++i) k *= static_cast<double>(config_.weight_shape[i]);
    const double groups = static_cast<double>(config_.groups);
    const double product = batch * positions * k * out;  // per-sample product, or the clipped-sum product
    if (path == Path::kMaterialize) return product + 2.0 * batch * k * out;
    return product + batch * positions * positions * (k * groups + out + groups);
  }

  std::unique_ptr<LayerBatch> Prepare(const at::Tensor& a, const at::Tensor& delta, Path path) const override {
    const std::string rule = Rule();
    const int64_t dims = config_.spatial + 2;
    if (a.dim() != dims || delta.dim() != dims || a.size(0) != delta.size(0)) {
      ShapeError(rule, "expected batched input and output with " + std::to_string(dims) + " dimensions");
    }
    std::vector<bool> is_weight;
    bool any_weight = false;
    for (const Slot& slot : slots) {
      is_weight.push_back(slot.arg == 1);
      any_weight = any_weight || slot.arg == 1;
    }
    ConvInputs x;
    x.batch = delta.size(0);
    x.groups = config_.groups;
    const int64_t out = delta.size(1);
    if (out % x.groups != 0) ShapeError(rule, "output channels are not divisible by groups");
    x.og = out / x.groups;
    x.a = config_.spatial == 1 ? a.unsqueeze(2) : a;
    x.d = config_.spatial == 1 ? delta.unsqueeze(2) : delta;
    x.positions = x.d.size(2) * x.d.size(3);
    if (any_weight) {
      const auto two = [&](const std::vector<int64_t>& v, int64_t fill) {
        return config_.spatial == 1 ? std::vector<int64_t>{fill, v[0]} : v;
      };
      x.kernel = two(std::vector<int64_t>(config_.weight_shape.begin() + 2, config_.weight_shape.end()), 1);
      x.stride = two(config_.stride, 1);
      x.padding = two(config_.padding, 0);
      x.dilation = two(config_.dilation, 1);
      if (x.a.size(1) % x.groups != 0) ShapeError(rule, "input channels are not divisible by groups");
      // The output size the convolution's configuration gives this input must be the output's.
      for (int64_t i = 0; i < 2; ++i) {
        const int64_t span = x.dilation[i] * (x.kernel[i] - 1) + 1;
        const int64_t size = (x.a.size(2 + i) + 2 * x.padding[i] - span) / x.stride[i] + 1;
        if (size != x.d.size(2 + i)) ShapeError(rule, "the input does not give the output's positions");
      }
    }
    return std::make_unique<ConvBatch>(std::move(x), std::move(is_weight), config_.weight_shape,
                                       path == Path::kGhost && any_weight);
  }

 private:
  ConvConfig config_;
};

std::optional<std::vector<int64_t>> Expand(const std::optional<std::vector<int64_t>>& values, int64_t spatial) {
  if (!values) return std::nullopt;
  if (static_cast<int64_t>(values->size()) == spatial) return values;
  if (values->size() == 1) return std::vector<int64_t>(static_cast<size_t>(spatial), (*values)[0]);
  return std::nullopt;
}

}  // namespace

MatchResult MatchConvolution(const OpView& op) {
  const bool traced = op.kind == "aten::_convolution" || op.kind == "aten::convolution";
  const auto& args = op.args;
  if (args.size() < (traced ? 9u : 7u)) return {nullptr, op.kind + " with an unknown signature"};
  ConvConfig config;
  const OpArg& weight = args[1];
  const bool weight_known = weight.kind == OpArg::Kind::kParameter || weight.kind == OpArg::Kind::kState;
  if (weight_known) {
    config.weight_shape = weight.shape;
    config.spatial = static_cast<int64_t>(weight.shape.size()) - 2;
  } else if (op.kind == "aten::conv1d") {
    config.spatial = 1;
  } else if (op.kind == "aten::conv2d") {
    config.spatial = 2;
  } else {
    return {nullptr, op.kind + " with a computed weight"};
  }
  if (config.spatial != 1 && config.spatial != 2) {
    return {nullptr,
            op.kind + " with " + std::to_string(config.spatial) + " spatial dimensions (only 1-D and 2-D have a rule)"};
  }
  if (traced) {
    const auto transposed = ConstantBool(args[6]);
    if (!transposed || *transposed) return {nullptr, op.kind + " transposed (no rule for transposed convolutions)"};
  }
  const auto stride = Expand(ConstantInts(args[3]), config.spatial);
  const auto dilation = Expand(ConstantInts(args[5]), config.spatial);
  const auto groups = ConstantInt(args[traced ? 8 : 6]);
  if (!stride || !dilation || !groups || *groups < 1)
    return {nullptr, op.kind + " with non-constant stride, dilation or groups"};
  config.stride = *stride;
  config.dilation = *dilation;
  config.groups = *groups;
  const OpArg& padding = args[4];
  if (padding.kind == OpArg::Kind::kConstant && padding.constant.isString()) {
    const std::string mode = padding.constant.toStringRef();
    config.padding.assign(static_cast<size_t>(config.spatial), 0);
    if (mode == "same") {
      if (!weight_known) return {nullptr, op.kind + " with padding='same' and a computed weight"};
      for (int64_t i = 0; i < config.spatial; ++i) {
        const int64_t total = config.dilation[i] * (config.weight_shape[2 + i] - 1);
        if (total % 2 != 0) return {nullptr, op.kind + " with asymmetric padding='same'"};
        config.padding[i] = total / 2;
      }
    } else if (mode != "valid") {
      return {nullptr, op.kind + " with padding='" + mode + "'"};
    }
  } else {
    const auto pads = Expand(ConstantInts(padding), config.spatial);
    if (!pads) return {nullptr, op.kind + " with non-constant padding"};
    config.padding = *pads;
  }
  auto layer = std::make_unique<ConvLayer>(std::move(config));
  layer->activation_arg = 0;
  if (weight_known) AddSlotIfParameter(*layer, op, 1);
  AddSlotIfParameter(*layer, op, 2);
  if (layer->slots.empty()) return {};
  return {std::move(layer), ""};
}

}  // namespace bastion::core::dp::grad_sample
