// The CSPRNG of private training: an AES-128-CTR keystream keyed from the OS, and what is drawn from it
// (N(0, 1) draws for the noise by a ziggurat, 53-bit uniforms for Poisson sampling).
#ifndef BASTION_CORE_DP_GAUSSIAN_H_
#define BASTION_CORE_DP_GAUSSIAN_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace bastion::core::dp {

// `size` bytes from getrandom(2) (blocking until the kernel's pool is initialised). Throws
// std::runtime_error when the kernel refuses; there is deliberately no weaker fallback.
void OsRandomBytes(void* out, size_t size);

// A stream of N(0, 1) draws: the ziggurat method of Marsaglia and Tsang (2000, 256 layers) over the
// keystream of AES-128 in counter mode (OpenSSL, as linked into Node), with a key and counter from the
// OS. Unlike the published generator, the layer index and the abscissa come from disjoint bits of a
// word (Doornik 2005 showed that the shared bits correlate the draws), and abscissae are cell
// midpoints, so the distribution is exactly symmetric. The core of the ziggurat runs 8 words at a
// time where the CPU has AVX2. Not thread-safe: one stream per thread.
class GaussianStream {
 public:
  GaussianStream();
  ~GaussianStream();
  GaussianStream(const GaussianStream&) = delete;
  GaussianStream& operator=(const GaussianStream&) = delete;

  // data[j] ← scale·data[j] + amplitude·Z_j for j < count, with Z_j independent N(0, 1). Returns
  // whether every result is finite (the check costs nothing in this pass).
  bool AddScaled(float* data, int64_t count, double amplitude, double scale);
  bool AddScaled(double* data, int64_t count, double amplitude, double scale);

  // A uniform draw from {k · 2^-53 : 0 ≤ k < 2^53} (the top 53 bits of a 64-bit keystream word), so
  // that `Uniform() < q` holds with probability q rounded to a multiple of 2^-53, for any double q.
  double Uniform() {
    const uint64_t high = Word();
    const uint64_t word = (high << 32) | Word();
    return static_cast<double>(word >> 11) * 0x1p-53;
  }

 private:
  // A uniform 32-bit word of the keystream.
  uint32_t Word() {
    if (next_ == buffer_.size()) Refill();
    return buffer_[next_++];
  }
  template <typename T>
  bool AddScaledPortable(T* data, int64_t count, double amplitude, double scale);
  bool AddScaledAvx2(float* data, int64_t count, float amplitude, float scale);
  // The draw for a word the core rejected (a wedge or the tail: about 1.5 % of words); draws more words.
  double Slow(uint32_t word);
  // Up to `block` (≥ multiple) words of the buffer, a multiple of `multiple` of them, refilling the
  // buffer when fewer are left (those are skipped); returns how many.
  int64_t Take(int64_t block, int64_t multiple, const uint32_t** words);
  void Refill();

  struct Cipher;
  std::unique_ptr<Cipher> cipher_;
  std::array<uint32_t, 4096> buffer_{};
  size_t next_;
};

}  // namespace bastion::core::dp

#endif  // BASTION_CORE_DP_GAUSSIAN_H_
