// The CSPRNG of private training: a keystream keyed from the OS (AEGIS-128L where the CPU has AES-NI and
// AVX2, AES-128-CTR elsewhere), and what is drawn from it (N(0, 1) draws for the noise by a ziggurat, 53-bit
// uniforms for Poisson sampling).
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

// The AEGIS keystream GaussianStream draws on, for a given 16-byte key and nonce, from the variant this
// CPU and BASTION_MAX_CPU_ISA pick (VAES, or AES-NI one instance at a time): per 128 bytes, 16 bytes of
// each of the four AEGIS-128L streams (nonce with its last byte XOR lane), then 16 more of each.
// `bytes` must be a multiple of 128. Returns false, writing nothing, where GaussianStream runs
// OpenSSL's AES-128-CTR instead. For tests.
bool AegisKeystreamForTest(const unsigned char* key, const unsigned char* nonce, unsigned char* out, size_t bytes);

// A stream of N(0, 1) draws: the ziggurat method of Marsaglia and Tsang (2000) over a keystream with a
// key and nonce from the OS: AEGIS-128L as a stream cipher (RFC 10032), four instances, in the lanes of
// the VAES instructions where the CPU has them and AVX-512, with AES-NI where it has AVX2 (each checked
// once against the RFC's test vector), and AES-128 in counter mode from OpenSSL, as linked into Node,
// elsewhere. Unlike the published
// generator, the layer index and the abscissa come from disjoint bits of a word (Doornik 2005 showed
// that the shared bits correlate the draws), and abscissae are cell midpoints, so the distribution is
// exactly symmetric. The ziggurat has 128 layers on AVX-512 (16 words at a time, its tables in
// registers) and 256 elsewhere (8 words at a time with AVX2); the CPU's widest set is used, capped by
// BASTION_MAX_CPU_ISA as for the per-sample kernels. Not thread-safe: one stream per thread.
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
  bool AddScaledAvx512(float* data, int64_t count, float amplitude, float scale);
  // The AVX-512 core's rejected words (missed, with their places in data), resolved and combined; a
  // non-finite result sets its lane in bad. Returns how many words it listed again in their place.
  int64_t ResolveAvx512(float* data, uint32_t* missed, int32_t* where, int64_t misses, float amplitude, float scale,
                        uint16_t* bad);
  // The draw for a word a core rejected (a wedge or the tail: 1.5 % of words with 256 layers); draws
  // more words. Tables is the ziggurat the word was drawn for.
  template <typename Tables>
  double Slow(const Tables& z, uint32_t word);
  // A draw beyond the ziggurat's r, on the side of h's sign.
  template <typename Tables>
  double Tail(const Tables& z, int32_t h);
  // A uniform in (0, 1), never 0 or 1, from one word.
  double Uniform32();
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
