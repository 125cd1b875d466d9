// Per-sample weight gradients of a float32 2-D convolution, g_i = δ_i U_iᵀ per group, computed one
// sample at a time in the core's cache: the sample's unfolded input U_i [L, C/G·kh·kw] is gathered
// into a buffer of its own and multiplied by δ_i [O/G, L] in register blocks, so that only the
// squared norm ||g_i||² (and, when asked, g_i itself) leaves the cache. libtorch's forms of the same
// product (a grouped convolution with the samples folded into the groups, or im2col and a batched
// matmul) run several times slower on these shapes: tiny per-sample products are where its kernels
// pay the most per call (issue 17).
#pragma once

#include <cstdint>

namespace bastion::core::dp::grad_sample {

struct ConvShape {
  int64_t batch, channels, height, width;  // input [B, C, H, W]
  int64_t out, out_height, out_width;      // output gradient [B, O, Ho, Wo]
  int64_t groups;
  int64_t kernel[2], stride[2], padding[2], dilation[2];
};

// norms [B] = ||g_i||²; when grads is not null, also g_i into grads [B, O·C/G·kh·kw], in the weight's
// layout [O, C/G, kh, kw] or, when this returns true, per group in the order [O/G, kh·kw, C/G] (the
// kernel's channels-last form). input and delta are contiguous. Samples run in parallel over
// libtorch's intra-op threads (the loops call no libtorch kernel).
bool ConvWeightPerSample(const ConvShape& shape, const float* input, const float* delta, float* norms, float* grads);

}  // namespace bastion::core::dp::grad_sample
