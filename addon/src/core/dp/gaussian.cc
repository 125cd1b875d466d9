// The Gaussian sampler behind the DP noise. ATen's normal_ (mt19937 under a lock, then Box–Muller)
// took 7 ns a draw on the benchmark machine, most of a private step for an embedding of 640k weights;
// this takes 1.5 ns with AVX2 and OpenSSL's keystream, 0.4 ns with AVX-512 and VAES (one Zen 5 core,
// keystream included), and its bits come from a cryptographic generator, so no number of draws
// predicts another.
#include "core/dp/gaussian.h"

// GCC 12 reports the _mm512_undefined_* placeholders inside AVX-512 intrinsics (broadcast, gather,
// abs, cvt...) as uninitialised when they are inlined into a target("arch=x86-64-v4") function (GCC
// bug 105593, fixed in 13); the header's lines are exempt.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/dp/grad_sample/cpu_isa.h"

namespace bastion::core::dp {

void OsRandomBytes(void* out, size_t size) {
  auto* bytes = static_cast<unsigned char*>(out);
  size_t filled = 0;
  while (filled < size) {
    const ssize_t got = getrandom(bytes + filled, size - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    filled += static_cast<size_t>(got);
  }
}

namespace {

using grad_sample::Isa;
using grad_sample::MaxIsa;

constexpr int64_t kBlock = 2048;  // words per pass of a core, a multiple of 16

// A ziggurat of the standard normal density f(x) = exp(-x²/2) with `Layers` layers (Marsaglia and
// Tsang 2000): r is where the tail starts and v the area of every layer. A word's low bits pick layer
// i (8 bits for 256 layers, 7 for 128; bit 7 is then unused) and its top 24 bits a signed abscissa h
// in units of 2^-31; x = h·w[i], and |h| < k[i] means x lies in the part of layer i that is under the
// curve, where it is accepted at once (98.5 % of words with 256 layers, 97.2 % with 128).
template <int Layers>
struct Ziggurat {
  static constexpr int kLayers = Layers;
  double r;
  uint32_t k[Layers];  // all below 2^31, so they compare as signed too
  double w[Layers];
  double f[Layers];
  uint16_t k_high[Layers];  // k[i] >> 15: |h| >> 15 < k_high[i] implies |h| < k[i], and misses 2^-16 of it
  float w_float[Layers];    // w and f rounded, for the vector cores
  float f_float[Layers];
  // {k[i], w[i] as float} in one 64-bit entry: one gather fetches both (AVX2 gathers are slow).
  struct alignas(8) Pair {
    uint32_t k;
    float w;
  } pairs[Layers];
  Ziggurat(double tail_start, double area) : r(tail_start) {
    const double m = 2147483648.0;  // 2^31
    double x = r;
    double previous = x;
    const double q = area / std::exp(-0.5 * x * x);
    k[0] = static_cast<uint32_t>((x / q) * m);
    k[1] = 0;
    w[0] = q / m;
    w[Layers - 1] = x / m;
    f[0] = 1.0;
    f[Layers - 1] = std::exp(-0.5 * x * x);
    for (int i = Layers - 2; i >= 1; --i) {
      x = std::sqrt(-2.0 * std::log(area / x + std::exp(-0.5 * x * x)));
      k[i + 1] = static_cast<uint32_t>((x / previous) * m);
      previous = x;
      f[i] = std::exp(-0.5 * x * x);
      w[i] = x / m;
    }
    for (int i = 0; i < Layers; ++i) {
      k_high[i] = static_cast<uint16_t>(k[i] >> 15);
      w_float[i] = static_cast<float>(w[i]);
      f_float[i] = static_cast<float>(f[i]);
      pairs[i] = {k[i], w_float[i]};
    }
  }
  static int Layer(uint32_t word) { return static_cast<int>(word & (Layers - 1)); }
};

// 256 layers for the scalar and AVX2 cores (gathers make the table's size free), 128 for the AVX-512
// core, which keeps both of its tables in registers.
const Ziggurat<256>& Narrow() {
  static const Ziggurat<256> tables(3.6541528853610088, 4.92867323399e-3);
  return tables;
}
const Ziggurat<128>& Wide() {
  static const Ziggurat<128> tables(3.442619855899, 9.91256303526217e-3);
  return tables;
}

// The abscissa: the word's top 24 bits, at the midpoint of their cell (multiples of 256 offset by
// 128), so that h and -h are equally likely.
inline int32_t Abscissa(uint32_t word) { return static_cast<int32_t>(word & ~uint32_t{255}) + 128; }
inline uint32_t Magnitude(int32_t h) { return static_cast<uint32_t>(h < 0 ? -h : h); }  // |h| ≤ 2^31 - 128

// The core for 8 words at a time, in float: candidates into value, and bit b of the result set when
// word b needs the slow path.
__attribute__((target("arch=x86-64-v3"))) inline unsigned CandidatesAvx2(const uint32_t* words, const Ziggurat<256>& z,
                                                                         float* value) {
  const __m256i layer_mask = _mm256_set1_epi32(255);
  const __m256i word = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words));
  const __m256i layer = _mm256_and_si256(word, layer_mask);
  const __m256i h = _mm256_add_epi32(_mm256_andnot_si256(layer_mask, word), _mm256_set1_epi32(128));
  // {k, w} of words 0-3 and 4-7, then k and w of all 8 in order.
  const auto* pairs = reinterpret_cast<const long long*>(z.pairs);
  const __m256 low = _mm256_castsi256_ps(_mm256_i32gather_epi64(pairs, _mm256_castsi256_si128(layer), 8));
  const __m256 high = _mm256_castsi256_ps(_mm256_i32gather_epi64(pairs, _mm256_extracti128_si256(layer, 1), 8));
  const __m256i threshold = _mm256_permute4x64_epi64(
      _mm256_castps_si256(_mm256_shuffle_ps(low, high, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0));
  const __m256 width = _mm256_castsi256_ps(_mm256_permute4x64_epi64(
      _mm256_castps_si256(_mm256_shuffle_ps(low, high, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
  const __m256i accepted = _mm256_cmpgt_epi32(threshold, _mm256_abs_epi32(h));
  _mm256_storeu_ps(value, _mm256_mul_ps(_mm256_cvtepi32_ps(h), width));
  return ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(accepted))) & 0xFFu;
}

// data ← scale·data + amplitude·value for 8 floats; returns a mask that is non-zero for a non-finite result.
__attribute__((target("arch=x86-64-v3"))) inline __m256 CombineAvx2(float* data, const float* value, __m256 amplitude,
                                                                    __m256 scale) {
  const __m256 result = _mm256_fmadd_ps(amplitude, _mm256_loadu_ps(value), _mm256_mul_ps(scale, _mm256_loadu_ps(data)));
  _mm256_storeu_ps(data, result);
  // x - x is 0 for finite x and NaN for ±inf and NaN.
  return _mm256_cmp_ps(_mm256_sub_ps(result, result), _mm256_setzero_ps(), _CMP_NEQ_UQ);
}

// A word's layer in the 128-layer ziggurat (its low 7 bits) and its abscissa h (the top 24 bits, at the
// midpoint of their cell), 16 words at a time; Abscissa() for one.
__attribute__((target("arch=x86-64-v4"))) inline __m512i WideLayer(__m512i word) {
  return _mm512_and_si512(word, _mm512_set1_epi32(127));
}
__attribute__((target("arch=x86-64-v4"))) inline __m512i WideAbscissa(__m512i word) {
  return _mm512_add_epi32(_mm512_and_si512(word, _mm512_set1_epi32(~255)), _mm512_set1_epi32(128));
}

// table[index] for 16 indices below 128, from a table of 128 words held in 8 registers: four
// two-register permutes on the index's low 5 bits, then bits 5 and 6 pick among them. (Lookups with
// the same index share the bit tests once inlined.)
__attribute__((target("arch=x86-64-v4"))) inline __m512i Lookup128(const __m512i* table, __m512i index) {
  const __mmask16 bit5 = _mm512_test_epi32_mask(index, _mm512_set1_epi32(32));
  const __mmask16 bit6 = _mm512_test_epi32_mask(index, _mm512_set1_epi32(64));
  const __m512i low = _mm512_mask_blend_epi32(bit5, _mm512_permutex2var_epi32(table[0], index, table[1]),
                                              _mm512_permutex2var_epi32(table[2], index, table[3]));
  const __m512i high = _mm512_mask_blend_epi32(bit5, _mm512_permutex2var_epi32(table[4], index, table[5]),
                                               _mm512_permutex2var_epi32(table[6], index, table[7]));
  return _mm512_mask_blend_epi32(bit6, low, high);
}

// The same from a table of 128 16-bit entries held in 4 registers, in the low half of each lane: two
// two-register permutes of 16-bit lanes on the index's low 6 bits, then bit 6 picks.
__attribute__((target("arch=x86-64-v4"))) inline __m512i Lookup128Short(const __m512i* table, __m512i index) {
  const __mmask16 bit6 = _mm512_test_epi32_mask(index, _mm512_set1_epi32(64));
  const __m512i low = _mm512_permutex2var_epi16(table[0], index, table[1]);
  const __m512i high = _mm512_permutex2var_epi16(table[2], index, table[3]);
  return _mm512_and_si512(_mm512_mask_blend_epi32(bit6, low, high), _mm512_set1_epi32(0xFFFF));
}

// exp(t) for t in [-8, 0] within 1e-7 relative (7.9e-8 measured against double): t = n·ln 2 + s with
// |s| ≤ ln(2)/2, e^s by its Taylor series to degree 7 (remainder below 6e-9), scaled by 2^n.
__attribute__((target("arch=x86-64-v4"))) inline __m512 ExpNonPositive(__m512 t) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 s = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), t);  // ln 2 split so that n·high is exact
  s = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-6f), s);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 5040), s, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Lanes with an infinite or NaN element (classes QNaN, +inf, -inf, SNaN).
__attribute__((target("arch=x86-64-v4"))) inline __mmask16 NonFinite(__m512 x) {
  return _mm512_fpclass_ps_mask(x, 0x99);
}

// AES-128 in counter mode with the VAES instructions, 16 blocks at a time in four 512-bit registers;
// where the CPU has them, the keystream comes from here instead of OpenSSL (which runs 128-bit AES-NI):
// 32 GB/s against 10 on one Zen 5 core. A self-test checks it against OpenSSL before it is used.
constexpr int kRounds = 10;

__attribute__((target("aes,sse4.1"))) inline __m128i NextRoundKey(__m128i key, __m128i assist) {
  assist = _mm_shuffle_epi32(assist, 0xff);
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  return _mm_xor_si128(key, assist);
}

// The AES-128 key schedule (FIPS 197, 5.2), 11 round keys of 16 bytes.
__attribute__((target("aes,sse4.1"))) void ExpandKey(const unsigned char* key, unsigned char* round_keys) {
  __m128i k[kRounds + 1];
  k[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  // The round constant is an immediate operand, hence the unrolled list.
  k[1] = NextRoundKey(k[0], _mm_aeskeygenassist_si128(k[0], 0x01));
  k[2] = NextRoundKey(k[1], _mm_aeskeygenassist_si128(k[1], 0x02));
  k[3] = NextRoundKey(k[2], _mm_aeskeygenassist_si128(k[2], 0x04));
  k[4] = NextRoundKey(k[3], _mm_aeskeygenassist_si128(k[3], 0x08));
  k[5] = NextRoundKey(k[4], _mm_aeskeygenassist_si128(k[4], 0x10));
  k[6] = NextRoundKey(k[5], _mm_aeskeygenassist_si128(k[5], 0x20));
  k[7] = NextRoundKey(k[6], _mm_aeskeygenassist_si128(k[6], 0x40));
  k[8] = NextRoundKey(k[7], _mm_aeskeygenassist_si128(k[7], 0x80));
  k[9] = NextRoundKey(k[8], _mm_aeskeygenassist_si128(k[8], 0x1b));
  k[10] = NextRoundKey(k[9], _mm_aeskeygenassist_si128(k[9], 0x36));
  for (int i = 0; i <= kRounds; ++i) _mm_storeu_si128(reinterpret_cast<__m128i*>(round_keys + 16 * i), k[i]);
  volatile unsigned char* wipe = reinterpret_cast<unsigned char*>(k);  // the schedule on the stack
  for (size_t i = 0; i < sizeof(k); ++i) wipe[i] = 0;
}

// A 16-byte counter block as OpenSSL's CTR mode reads it, a big-endian number, into two native halves.
inline void CounterHalves(const unsigned char* block, uint64_t& high, uint64_t& low) {
  high = 0;
  low = 0;
  for (int i = 0; i < 8; ++i) {
    high = (high << 8) | block[i];
    low = (low << 8) | block[8 + i];
  }
}

// `blocks` (a multiple of 16) blocks of keystream into out: block b is AES_k(counter + b), the
// counter a 128-bit big-endian number as OpenSSL's CTR mode counts it, held as two native halves.
__attribute__((target("arch=x86-64-v4,vaes"))) void CtrKeystream(const unsigned char* round_keys, uint64_t& high,
                                                                 uint64_t& low, unsigned char* out, size_t blocks) {
  __m512i keys[kRounds + 1];
  for (int i = 0; i <= kRounds; ++i) {
    keys[i] = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(round_keys + 16 * i)));
  }
  // Each 128-bit lane holds {low, high}; reversing its 16 bytes gives the big-endian block.
  const __m512i reverse = _mm512_broadcast_i32x4(_mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
  uint64_t h = high;
  uint64_t l = low;
  for (size_t b = 0; b < blocks; b += 16) {
    __m512i s0, s1, s2, s3;        // four named registers: an array of them is kept in memory
    if (l <= ~uint64_t{0} - 15) {  // no carry into the high half within these 16
      const __m512i base =
          _mm512_set_epi64(static_cast<long long>(h), static_cast<long long>(l + 3), static_cast<long long>(h),
                           static_cast<long long>(l + 2), static_cast<long long>(h), static_cast<long long>(l + 1),
                           static_cast<long long>(h), static_cast<long long>(l));
      const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
      s0 = base;
      s1 = _mm512_add_epi64(s0, four);
      s2 = _mm512_add_epi64(s1, four);
      s3 = _mm512_add_epi64(s2, four);
    } else {
      alignas(64) uint64_t counters[32];
      for (int j = 0; j < 16; ++j) {
        counters[2 * j] = l + static_cast<uint64_t>(j);
        counters[2 * j + 1] = h + (counters[2 * j] < l ? 1 : 0);
      }
      s0 = _mm512_load_si512(counters);
      s1 = _mm512_load_si512(counters + 8);
      s2 = _mm512_load_si512(counters + 16);
      s3 = _mm512_load_si512(counters + 24);
    }
    h += l + 16 < l ? 1 : 0;
    l += 16;
    s0 = _mm512_xor_si512(_mm512_shuffle_epi8(s0, reverse), keys[0]);
    s1 = _mm512_xor_si512(_mm512_shuffle_epi8(s1, reverse), keys[0]);
    s2 = _mm512_xor_si512(_mm512_shuffle_epi8(s2, reverse), keys[0]);
    s3 = _mm512_xor_si512(_mm512_shuffle_epi8(s3, reverse), keys[0]);
#pragma GCC unroll 9
    for (int i = 1; i < kRounds; ++i) {
      s0 = _mm512_aesenc_epi128(s0, keys[i]);
      s1 = _mm512_aesenc_epi128(s1, keys[i]);
      s2 = _mm512_aesenc_epi128(s2, keys[i]);
      s3 = _mm512_aesenc_epi128(s3, keys[i]);
    }
    _mm512_storeu_si512(out, _mm512_aesenclast_epi128(s0, keys[kRounds]));
    _mm512_storeu_si512(out + 64, _mm512_aesenclast_epi128(s1, keys[kRounds]));
    _mm512_storeu_si512(out + 128, _mm512_aesenclast_epi128(s2, keys[kRounds]));
    _mm512_storeu_si512(out + 192, _mm512_aesenclast_epi128(s3, keys[kRounds]));
    out += 256;
  }
  high = h;
  low = l;
}

// Whether the CPU runs CtrKeystream, and (checked once) whether it agrees with OpenSSL: 64 blocks
// under a fixed key from a counter whose low half carries into the high half within them.
bool VaesAvailable() {
#if defined(__x86_64__)
  static const bool available = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("x86-64-v4") || !__builtin_cpu_supports("vaes") || !__builtin_cpu_supports("aes")) {
      return false;
    }
    unsigned char key[16];
    unsigned char counter[16];
    for (int i = 0; i < 16; ++i) {
      key[i] = static_cast<unsigned char>(0x2b + 37 * i);
      counter[i] = static_cast<unsigned char>(i < 8 ? 0xa0 + i : 0xff);
    }
    counter[15] = 0xe8;  // low half 2^64 - 24: the carry falls in the second group of 16
    unsigned char round_keys[16 * (kRounds + 1)];
    ExpandKey(key, round_keys);
    uint64_t high = 0;
    uint64_t low = 0;
    CounterHalves(counter, high, low);
    unsigned char ours[64 * 16];
    CtrKeystream(round_keys, high, low, ours, 64);
    unsigned char theirs[64 * 16] = {};
    EVP_CIPHER_CTX* context = EVP_CIPHER_CTX_new();
    int written = 0;
    const bool ok = context != nullptr && EVP_EncryptInit_ex(context, EVP_aes_128_ctr(), nullptr, key, counter) == 1 &&
                    EVP_EncryptUpdate(context, theirs, &written, theirs, sizeof(theirs)) == 1 &&
                    written == static_cast<int>(sizeof(theirs));
    EVP_CIPHER_CTX_free(context);
    if (!ok || std::memcmp(ours, theirs, sizeof(ours)) != 0) {
      throw std::runtime_error("the VAES keystream of the noise generator failed its self-test against OpenSSL");
    }
    return true;
  }();
  return available;
#else
  return false;
#endif
}

}  // namespace

struct GaussianStream::Cipher {
  EVP_CIPHER_CTX* context = nullptr;  // OpenSSL's AES-128-CTR, where the keystream does not come from VAES
  unsigned char round_keys[16 * (kRounds + 1)] = {};
  uint64_t high = 0;  // the counter block, big-endian {high, low}
  uint64_t low = 0;
  ~Cipher() {
    EVP_CIPHER_CTX_free(context);
    OPENSSL_cleanse(round_keys, sizeof(round_keys));
  }
};

GaussianStream::GaussianStream() : cipher_(std::make_unique<Cipher>()), next_(buffer_.size()) {
  Narrow();
  Wide();
  unsigned char key_and_counter[32];
  OsRandomBytes(key_and_counter, sizeof(key_and_counter));
  bool ok = true;
  if (MaxIsa() == Isa::kAvx512 && VaesAvailable()) {
    ExpandKey(key_and_counter, cipher_->round_keys);
    CounterHalves(key_and_counter + 16, cipher_->high, cipher_->low);
  } else {
    cipher_->context = EVP_CIPHER_CTX_new();
    ok = cipher_->context != nullptr &&
         EVP_EncryptInit_ex(cipher_->context, EVP_aes_128_ctr(), nullptr, key_and_counter, key_and_counter + 16) == 1;
  }
  OPENSSL_cleanse(key_and_counter, sizeof(key_and_counter));
  if (!ok) throw std::runtime_error("could not initialise AES-128-CTR for the noise generator");
}

GaussianStream::~GaussianStream() { OPENSSL_cleanse(buffer_.data(), sizeof(buffer_)); }

void GaussianStream::Refill() {
  auto* bytes = reinterpret_cast<unsigned char*>(buffer_.data());
  if (cipher_->context == nullptr) {
    CtrKeystream(cipher_->round_keys, cipher_->high, cipher_->low, bytes, sizeof(buffer_) / 16);
  } else {
    // OpenSSL's CTR mode encrypts zeros in place.
    std::memset(buffer_.data(), 0, sizeof(buffer_));
    int written = 0;
    if (EVP_EncryptUpdate(cipher_->context, bytes, &written, bytes, static_cast<int>(sizeof(buffer_))) != 1 ||
        written != static_cast<int>(sizeof(buffer_))) {
      throw std::runtime_error("AES-128-CTR failed in the noise generator");
    }
  }
  next_ = 0;
}

int64_t GaussianStream::Take(int64_t block, int64_t multiple, const uint32_t** words) {
  if (static_cast<int64_t>(buffer_.size() - next_) < multiple) Refill();
  const int64_t taken = std::min(block, static_cast<int64_t>(buffer_.size() - next_)) / multiple * multiple;
  *words = buffer_.data() + next_;
  next_ += static_cast<size_t>(taken);
  return taken;
}

double GaussianStream::Uniform32() { return (static_cast<double>(Word()) + 0.5) * 0x1p-32; }

template <typename Tables>
double GaussianStream::Tail(const Tables& z, int32_t h) {
  // Beyond r (Marsaglia 1964): r + t with t = -ln(u1)/r, accepted when -2 ln(u2) > t².
  double t;
  double y;
  do {
    t = -std::log(Uniform32()) / z.r;
    y = -std::log(Uniform32());
  } while (y + y < t * t);
  return h > 0 ? z.r + t : -z.r - t;
}

template <typename Tables>
double GaussianStream::Slow(const Tables& z, uint32_t word) {
  for (;;) {
    const int32_t h = Abscissa(word);
    const int i = Tables::Layer(word);
    if (Magnitude(h) < z.k[i]) return h * z.w[i];
    const double x = h * z.w[i];
    if (i == 0) return Tail(z, h);
    // A wedge: accepted when a uniform height within the layer falls under the curve.
    if (z.f[i] + Uniform32() * (z.f[i - 1] - z.f[i]) < std::exp(-0.5 * x * x)) return x;
    word = Word();
  }
}

template <typename T>
bool GaussianStream::AddScaledPortable(T* data, int64_t count, double amplitude, double scale) {
  const Ziggurat<256>& z = Narrow();
  double value[kBlock];
  uint32_t missed[kBlock];
  int64_t where[kBlock];
  bool finite = true;
  while (count > 0) {
    const uint32_t* words = nullptr;
    const int64_t block = Take(std::min(kBlock, count), 1, &words);
    int64_t misses = 0;
    for (int64_t j = 0; j < block; ++j) {
      const int32_t h = Abscissa(words[j]);
      const int i = Ziggurat<256>::Layer(words[j]);
      value[j] = h * z.w[i];
      missed[misses] = words[j];
      where[misses] = j;
      misses += Magnitude(h) >= z.k[i];
    }
    for (int64_t m = 0; m < misses; ++m) value[where[m]] = Slow(z, missed[m]);
    for (int64_t j = 0; j < block; ++j) {
      data[j] = static_cast<T>(scale * static_cast<double>(data[j]) + amplitude * value[j]);
      finite &= std::isfinite(data[j]);
    }
    data += block;
    count -= block;
  }
  return finite;
}

__attribute__((target("arch=x86-64-v3"))) bool GaussianStream::AddScaledAvx2(float* data, int64_t count,
                                                                             float amplitude, float scale) {
  const Ziggurat<256>& z = Narrow();
  alignas(32) float value[kBlock];
  uint32_t missed[kBlock];
  int64_t where[kBlock];
  const __m256 amplitude8 = _mm256_set1_ps(amplitude);
  const __m256 scale8 = _mm256_set1_ps(scale);
  __m256 bad = _mm256_setzero_ps();
  while (count >= 8) {
    const uint32_t* words = nullptr;
    const int64_t block = Take(std::min(kBlock, count), 8, &words);
    int64_t misses = 0;
    for (int64_t g = 0; g < block; g += 8) {
      for (unsigned bits = CandidatesAvx2(words + g, z, value + g); bits != 0; bits &= bits - 1) {
        const int64_t j = g + __builtin_ctz(bits);
        missed[misses] = words[j];
        where[misses++] = j;
      }
    }
    // The slow path draws more words, which may refill the buffer: the missed words were copied.
    for (int64_t m = 0; m < misses; ++m) value[where[m]] = static_cast<float>(Slow(z, missed[m]));
    for (int64_t g = 0; g < block; g += 8)
      bad = _mm256_or_ps(bad, CombineAvx2(data + g, value + g, amplitude8, scale8));
    data += block;
    count -= block;
  }
  const bool finite = _mm256_movemask_ps(bad) == 0;
  return (count == 0 || AddScaledPortable(data, count, amplitude, scale)) && finite;
}

// The AVX-512 core: 16 words at a time through the 128-layer ziggurat, whose k and w tables sit in 16
// registers. Accepted draws are combined with data at once; the rest (2.8 %) are listed with their
// places and resolved by ResolveAvx512 after each block of words. Places are 32-bit offsets from the
// start of a chunk of at most 2^30 elements, whose list is emptied before the next chunk.
__attribute__((target("arch=x86-64-v4"))) bool GaussianStream::AddScaledAvx512(float* data, int64_t count,
                                                                               float amplitude, float scale) {
  const Ziggurat<128>& z = Wide();
  __m512i k_table[4];
  __m512i w_table[8];
  for (int j = 0; j < 4; ++j) k_table[j] = _mm512_loadu_si512(z.k_high + 32 * j);
  // w·amplitude: the core's x is the scaled draw at once.
  for (int j = 0; j < 8; ++j) {
    w_table[j] = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(z.w_float + 16 * j), _mm512_set1_ps(amplitude)));
  }
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 scale16 = _mm512_set1_ps(scale);
  // At most kBlock entries carried from earlier blocks, kBlock from this one, and room for a whole
  // register past the last: the lists are written 16 at a time.
  alignas(64) uint32_t missed[2 * kBlock + 16];
  alignas(64) int32_t where[2 * kBlock + 16];
  constexpr int64_t kChunk = int64_t{1} << 30;
  __mmask16 bad = 0;
  while (count >= 16) {
    const int64_t chunk = std::min(kChunk, count / 16 * 16);
    int64_t misses = 0;
    for (int64_t done = 0; done < chunk;) {
      const uint32_t* words = nullptr;
      const int64_t block = Take(std::min(kBlock, chunk - done), 16, &words);
      for (int64_t g = 0; g < block; g += 16) {
        const __m512i word = _mm512_loadu_si512(words + g);
        const __m512i layer = WideLayer(word);
        const __m512i h = WideAbscissa(word);
        const __m512i k = Lookup128Short(k_table, layer);
        const __m512 w = _mm512_castsi512_ps(Lookup128(w_table, layer));
        const __mmask16 accepted = _mm512_cmpgt_epi32_mask(k, _mm512_srli_epi32(_mm512_abs_epi32(h), 15));
        const __m512 scaled_draw = _mm512_mul_ps(_mm512_cvtepi32_ps(h), w);
        float* at = data + done + g;
        // 4 KB ahead: the gradients come from memory (a step's other work has evicted them), and this
        // measured 8–12 % faster than the hardware's prefetch alone. A prefetch past the end never faults.
        _mm_prefetch(reinterpret_cast<const char*>(at + 1024), _MM_HINT_T0);
        const __m512 current = _mm512_loadu_ps(at);
        const __m512 result = _mm512_fmadd_ps(scale16, current, scaled_draw);
        _mm512_storeu_ps(at, _mm512_mask_blend_ps(accepted, current, result));
        bad |= accepted & NonFinite(result);
        // The rejected words and their places, packed to the front of a register (a compress into
        // memory is microcoded on AMD).
        const auto rejected = static_cast<__mmask16>(~accepted);
        const __m512i place = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int32_t>(done + g)));
        _mm512_storeu_si512(missed + misses, _mm512_maskz_compress_epi32(rejected, word));
        _mm512_storeu_si512(where + misses, _mm512_maskz_compress_epi32(rejected, place));
        misses += __builtin_popcount(rejected);
      }
      done += block;
      // A word the wedge rejects comes back as a fresh word for the same place, resolved with the
      // next block's; the list never holds more than kBlock between blocks.
      do {
        misses = ResolveAvx512(data, missed, where, misses, amplitude, scale, &bad);
      } while (misses > kBlock || (done == chunk && misses > 0));
    }
    data += chunk;
    count -= chunk;
  }
  return (count == 0 || AddScaledPortable(data, count, amplitude, scale)) && bad == 0;
}

// The words the AVX-512 core rejected, resolved as Slow resolves them: a word in a wedge is accepted
// when a fresh uniform height falls under the curve, 16 at a time in float with exp to 1e-7; a height
// within 1e-5 (relative) of the curve is decided again in double, as Slow decides. The tail (a word of
// layer 0 beyond r) is drawn by Tail. A word the wedge rejects is replaced by a fresh word for the
// same place, listed at the front of missed and where: returns how many.
__attribute__((target("arch=x86-64-v4"))) int64_t GaussianStream::ResolveAvx512(float* data, uint32_t* missed,
                                                                                int32_t* where, int64_t misses,
                                                                                float amplitude, float scale,
                                                                                uint16_t* bad) {
  const Ziggurat<128>& z = Wide();
  const __m512 amplitude16 = _mm512_set1_ps(amplitude);
  const __m512 scale16 = _mm512_set1_ps(scale);
  // k, w and f in registers, looked up by permutes (gathers cost more).
  __m512i k_table[8];
  __m512i w_table[8];
  __m512i f_table[8];
  for (int j = 0; j < 8; ++j) {
    k_table[j] = _mm512_loadu_si512(z.k + 16 * j);
    w_table[j] = _mm512_loadu_si512(z.w_float + 16 * j);
    f_table[j] = _mm512_loadu_si512(z.f_float + 16 * j);
  }
  int64_t kept = 0;  // replaced words, written over entries already read
  for (int64_t g = 0; g < misses; g += 16) {
    const auto live = static_cast<__mmask16>(misses - g >= 16 ? 0xFFFF : (1u << (misses - g)) - 1);
    const __m512i word = _mm512_maskz_loadu_epi32(live, missed + g);
    const __m512i at = _mm512_maskz_loadu_epi32(live, where + g);
    const __m512i layer = WideLayer(word);
    const __m512i h = WideAbscissa(word);
    const __m512i k = Lookup128(k_table, layer);
    const __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(h), _mm512_castsi512_ps(Lookup128(w_table, layer)));
    const __mmask16 accepted = live & _mm512_cmpgt_epi32_mask(k, _mm512_abs_epi32(h));
    const __mmask16 tail = live & ~accepted & _mm512_cmpeq_epi32_mask(layer, _mm512_setzero_si512());
    const __mmask16 wedge = live & ~accepted & ~tail;
    // A uniform height in [0, 1) with 24 bits for every lane, and a replacement word, from fresh words.
    const uint32_t* fresh = nullptr;
    Take(32, 32, &fresh);
    const __m512 u =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(_mm512_loadu_si512(fresh), 8)), _mm512_set1_ps(0x1p-24f));
    const __m512i replacement = _mm512_loadu_si512(fresh + 16);
    const __m512 f = _mm512_castsi512_ps(Lookup128(f_table, layer));
    // f[i - 1]: layer 0 (the tail, not a wedge) wraps to 127, never used.
    const __m512 above =
        _mm512_castsi512_ps(Lookup128(f_table, WideLayer(_mm512_sub_epi32(layer, _mm512_set1_epi32(1)))));
    const __m512 height = _mm512_fmadd_ps(u, _mm512_sub_ps(above, f), f);
    const __m512 curve = ExpNonPositive(_mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_mul_ps(x, x)));
    const __m512 band = _mm512_mul_ps(curve, _mm512_set1_ps(1e-5f));
    const __mmask16 under = wedge & _mm512_cmp_ps_mask(height, _mm512_sub_ps(curve, band), _CMP_LT_OQ);
    const __mmask16 over = wedge & _mm512_cmp_ps_mask(height, _mm512_add_ps(curve, band), _CMP_GT_OQ);
    __mmask16 take = accepted | under;
    __mmask16 redraw = over;
    __m512 value = x;
    // Too close to call in float (rare): Slow's test in double, with the same height; and the tail.
    const auto close = static_cast<__mmask16>(wedge & ~under & ~over);
    if ((close | tail) != 0) {
      alignas(64) float values[16];
      alignas(64) float heights[16];
      alignas(64) uint32_t words[16];
      _mm512_store_ps(values, x);
      _mm512_store_ps(heights, u);
      _mm512_store_si512(words, word);
      for (unsigned bits = close; bits != 0; bits &= bits - 1) {
        const int b = __builtin_ctz(bits);
        const int i = Ziggurat<128>::Layer(words[b]);
        const double xd = Abscissa(words[b]) * z.w[i];
        const bool under_curve =
            z.f[i] + static_cast<double>(heights[b]) * (z.f[i - 1] - z.f[i]) < std::exp(-0.5 * xd * xd);
        (under_curve ? take : redraw) |= static_cast<__mmask16>(1u << b);
      }
      for (unsigned bits = tail; bits != 0; bits &= bits - 1) {
        const int b = __builtin_ctz(bits);
        values[b] = static_cast<float>(Tail(z, Abscissa(words[b])));
      }
      take |= tail;
      value = _mm512_load_ps(values);
    }
    const __m512 current = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), take, at, data, 4);
    const __m512 result = _mm512_fmadd_ps(amplitude16, value, _mm512_mul_ps(scale16, current));
    _mm512_mask_i32scatter_ps(data, take, at, result, 4);
    *bad |= take & NonFinite(result);
    _mm512_storeu_si512(missed + kept, _mm512_maskz_compress_epi32(redraw, replacement));
    _mm512_storeu_si512(where + kept, _mm512_maskz_compress_epi32(redraw, at));
    kept += __builtin_popcount(redraw);
  }
  return kept;
}

bool GaussianStream::AddScaled(float* data, int64_t count, double amplitude, double scale) {
  switch (MaxIsa()) {
    case Isa::kAvx512:
      return AddScaledAvx512(data, count, static_cast<float>(amplitude), static_cast<float>(scale));
    case Isa::kAvx2:
      return AddScaledAvx2(data, count, static_cast<float>(amplitude), static_cast<float>(scale));
    case Isa::kBaseline:
      break;
  }
  return AddScaledPortable(data, count, amplitude, scale);
}

bool GaussianStream::AddScaled(double* data, int64_t count, double amplitude, double scale) {
  return AddScaledPortable(data, count, amplitude, scale);
}

}  // namespace bastion::core::dp
