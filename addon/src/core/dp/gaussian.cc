// The Gaussian sampler behind the DP noise. ATen's normal_ (mt19937 under a lock, then Box–Muller)
// took 7 ns a draw on the benchmark machine, most of a private step for an embedding of 640k weights;
// this takes, keystream included, 0.6 ns with AVX-512 and VAES and 1.38 ns with AVX2 and AES-NI on one
// Zen 4 core (0.72 and 1.63 with OpenSSL's AES-128-CTR as the keystream; 0.4 and 1.5 on a Zen 5 core
// with that). Its bits come from a cryptographic generator, so no number of draws predicts another.
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

// The keystream: AEGIS-128L used as a stream cipher (RFC 10032, "AEGIS as a Stream Cipher": the
// encryption of zeros, without the tag), four instances under one key with nonces that differ in their
// last byte (lane i XORs i into it). Where the CPU has VAES and AVX-512 the four run at once, one in
// each 128-bit lane of 512-bit registers; with AVX2 and AES-NI, one after another. AEGIS-128L spends
// one AES round on 16 bytes of keystream where AES-128-CTR spends ten: 53-56 GB/s against 20 on one
// Zen 4 core, and the noise's draws went from 0.72 to 0.60 ns. Its security holds while a (key, nonce)
// pair encrypts at most 2^61 bytes: a stream's key is fresh from the OS and one stream draws far
// fewer. A self-test against the RFC's test vector 1 runs before the first use of each variant;
// test/addon/noise-keystream.test.ts compares whole streams with libsodium's AEGIS-128L. Without
// AES-NI (or with BASTION_MAX_CPU_ISA=baseline) the keystream is OpenSSL's AES-128-CTR.
constexpr int kAegisLanes = 4;
constexpr size_t kAegisUpdateBytes = 32 * kAegisLanes;  // keystream of one update: 32 bytes a lane

// The constants of Init (the Fibonacci numbers mod 256, and more of them).
constexpr unsigned char kAegisC0[16] = {0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d,
                                        0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62};
constexpr unsigned char kAegisC1[16] = {0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1,
                                        0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd};

struct AegisState {
  unsigned char v[8][64];  // V[j] of the four instances, lane i in bytes [16i, 16i + 16)
};

// AESRound(in, round_key) of the RFC, one AES encryption round (aesenc), on the block of one instance
// or the four blocks of a 512-bit register.
__attribute__((target("aes"))) inline __m128i AesRound(__m128i in, __m128i key) { return _mm_aesenc_si128(in, key); }
__attribute__((target("arch=x86-64-v4,vaes"))) inline __m512i AesRound(__m512i in, __m512i key) {
  return _mm512_aesenc_epi128(in, key);
}

// A 16-byte block in every 128-bit lane; with `numbered`, lane i (counted from `first`, the instance of
// the first lane) has i XORed into its last byte.
__attribute__((target("aes"))) inline __m128i Lanes(const __m128i* /*type*/, const unsigned char* block, int first,
                                                    bool numbered) {
  const __m128i out = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block));
  return numbered ? _mm_xor_si128(out, _mm_set_epi64x(static_cast<long long>(first) << 56, 0)) : out;
}
__attribute__((target("arch=x86-64-v4,vaes"))) inline __m512i Lanes(const __m512i* /*type*/, const unsigned char* block,
                                                                    int first, bool numbered) {
  const __m512i out = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block)));
  if (!numbered) return out;
  // Byte 15 of a block is the top byte of its upper 64-bit half.
  return _mm512_xor_si512(
      out, _mm512_set_epi64(static_cast<long long>(first + 3) << 56, 0, static_cast<long long>(first + 2) << 56, 0,
                            static_cast<long long>(first + 1) << 56, 0, static_cast<long long>(first) << 56, 0));
}

// The templates below run only inlined into the VAES and AES-NI functions after them, which give them
// their instructions. -Wpsabi would warn that a 512-bit value passed by value outside AVX-512 code changes
// the calling convention; no such call is left once they are inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

// The RFC's Update(M0, M1) on the instances in V's lanes (one for __m128i, four for __m512i); XOR is
// GCC's vector operator.
template <typename V>
[[gnu::always_inline]] inline void AegisUpdate(V (&v)[8], const V& m0, const V& m1) {
  const V n0 = AesRound(v[7], v[0] ^ m0);
  const V n1 = AesRound(v[0], v[1]);
  const V n2 = AesRound(v[1], v[2]);
  const V n3 = AesRound(v[2], v[3]);
  const V n4 = AesRound(v[3], v[4] ^ m1);
  const V n5 = AesRound(v[4], v[5]);
  const V n6 = AesRound(v[5], v[6]);
  const V n7 = AesRound(v[6], v[7]);
  v[0] = n0;
  v[1] = n1;
  v[2] = n2;
  v[3] = n3;
  v[4] = n4;
  v[5] = n5;
  v[6] = n6;
  v[7] = n7;
}

// Init(key, nonce) of the instances from `first` on, into their lanes of state.
template <typename V>
[[gnu::always_inline]] inline void AegisInitLanes(const unsigned char* key, const unsigned char* nonce, int first,
                                                  AegisState& state) {
  const V* type = nullptr;
  const V k = Lanes(type, key, first, false);
  const V n = Lanes(type, nonce, first, true);
  const V c0 = Lanes(type, kAegisC0, first, false);
  const V c1 = Lanes(type, kAegisC1, first, false);
  V v[8] = {k ^ n, c1, c0, c1, k ^ n, k ^ c0, k ^ c1, k ^ c0};
  for (int i = 0; i < 10; ++i) AegisUpdate(v, n, k);
  for (int j = 0; j < 8; ++j) std::memcpy(state.v[j] + 16 * first, &v[j], sizeof(V));
}

// `bytes` (a multiple of kAegisUpdateBytes) of keystream of the instances from `first` on into out: per
// update, z0 of lanes 0-3, then z1 of lanes 0-3 (lane i's stream is its z0 ‖ z1 of each update in turn).
template <typename V>
[[gnu::always_inline]] inline void AegisLanesKeystream(AegisState& state, int first, unsigned char* out, size_t bytes) {
  V v[8];
  for (int j = 0; j < 8; ++j) std::memcpy(&v[j], state.v[j] + 16 * first, sizeof(V));
  const V zero = {};
  for (size_t b = 0; b < bytes; b += kAegisUpdateBytes) {
    const V z0 = v[6] ^ v[1] ^ (v[2] & v[3]);
    const V z1 = v[2] ^ v[5] ^ (v[6] & v[7]);
    std::memcpy(out + b + 16 * first, &z0, sizeof(V));
    std::memcpy(out + b + 64 + 16 * first, &z1, sizeof(V));
    AegisUpdate(v, zero, zero);
  }
  for (int j = 0; j < 8; ++j) std::memcpy(state.v[j] + 16 * first, &v[j], sizeof(V));
}

#pragma GCC diagnostic pop

// The four instances at once with VAES, one in each lane of 512-bit registers; or with AES-NI, one
// after another, where the sampler runs its AVX2 core (no VAES or AVX-512, or BASTION_MAX_CPU_ISA=avx2).
// Both write the same bytes.
__attribute__((target("arch=x86-64-v4,vaes"))) void AegisInitWide(const unsigned char* key, const unsigned char* nonce,
                                                                  AegisState& state) {
  AegisInitLanes<__m512i>(key, nonce, 0, state);
}
__attribute__((target("arch=x86-64-v4,vaes"))) void AegisKeystreamWide(AegisState& state, unsigned char* out,
                                                                       size_t bytes) {
  AegisLanesKeystream<__m512i>(state, 0, out, bytes);
}
__attribute__((target("arch=x86-64-v3,aes"))) void AegisInitNarrow(const unsigned char* key, const unsigned char* nonce,
                                                                   AegisState& state) {
  for (int lane = 0; lane < kAegisLanes; ++lane) AegisInitLanes<__m128i>(key, nonce, lane, state);
}
__attribute__((target("arch=x86-64-v3,aes"))) void AegisKeystreamNarrow(AegisState& state, unsigned char* out,
                                                                        size_t bytes) {
  for (int lane = 0; lane < kAegisLanes; ++lane) AegisLanesKeystream<__m128i>(state, lane, out, bytes);
}

// Where a stream's keystream comes from: MaxIsa() picks, as it picks the sampler's core.
enum class Keystream { kAegisWide, kAegisNarrow, kOpenSsl };

// The two AEGIS variants' Init and keystream, by kind.
void AegisStart(Keystream kind, const unsigned char* key, const unsigned char* nonce, AegisState& state) {
  if (kind == Keystream::kAegisWide) {
    AegisInitWide(key, nonce, state);
  } else {
    AegisInitNarrow(key, nonce, state);
  }
}

void AegisFill(Keystream kind, AegisState& state, unsigned char* out, size_t bytes) {
  if (kind == Keystream::kAegisWide) {
    AegisKeystreamWide(state, out, bytes);
  } else {
    AegisKeystreamNarrow(state, out, bytes);
  }
}

// Whether the CPU runs `kind`, and (checked once per kind) whether every lane gives the RFC's test
// vector 1: key 10 01 00.., nonce 10 00 02 00.., 16 zero bytes encrypt to c1 c0 e5 8b ...
template <Keystream kind>
bool AegisAvailable() {
#if defined(__x86_64__)
  static const bool available = [] {
    __builtin_cpu_init();
    const bool cpu = kind == Keystream::kAegisWide
                         ? __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("vaes")
                         : __builtin_cpu_supports("x86-64-v3");
    if (!cpu || !__builtin_cpu_supports("aes")) return false;
    const unsigned char key[16] = {0x10, 0x01};
    const unsigned char expected[16] = {0xc1, 0xc0, 0xe5, 0x8b, 0xd9, 0x13, 0x00, 0x6f,
                                        0xeb, 0xa0, 0x0f, 0x4b, 0x3c, 0xc3, 0x59, 0x4e};
    for (unsigned char i = 0; i < kAegisLanes; ++i) {
      // Lane i XORs i into the nonce's last byte: this base nonce gives lane i the vector's.
      const unsigned char nonce[16] = {0x10, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i};
      AegisState state;
      unsigned char out[kAegisUpdateBytes];
      AegisStart(kind, key, nonce, state);
      AegisFill(kind, state, out, sizeof(out));
      if (std::memcmp(out + 16 * i, expected, sizeof(expected)) != 0) {
        throw std::runtime_error("the AEGIS keystream of the noise generator failed its self-test");
      }
    }
    return true;
  }();
  return available;
#else
  return false;
#endif
}

Keystream PickKeystream() {
  switch (MaxIsa()) {
    case Isa::kAvx512:
      if (AegisAvailable<Keystream::kAegisWide>()) return Keystream::kAegisWide;
      [[fallthrough]];
    case Isa::kAvx2:
      if (AegisAvailable<Keystream::kAegisNarrow>()) return Keystream::kAegisNarrow;
      [[fallthrough]];
    case Isa::kBaseline:
      break;
  }
  return Keystream::kOpenSsl;
}

}  // namespace

bool AegisKeystreamForTest(const unsigned char* key, const unsigned char* nonce, unsigned char* out, size_t bytes) {
  const Keystream kind = PickKeystream();
  if (kind == Keystream::kOpenSsl) return false;
  if (bytes % kAegisUpdateBytes != 0) throw std::invalid_argument("the keystream comes in whole updates of 128 bytes");
  AegisState state;
  AegisStart(kind, key, nonce, state);
  AegisFill(kind, state, out, bytes);
  OPENSSL_cleanse(&state, sizeof(state));
  return true;
}

struct GaussianStream::Cipher {
  Keystream kind = Keystream::kOpenSsl;
  EVP_CIPHER_CTX* context = nullptr;  // kOpenSsl: AES-128-CTR
  AegisState aegis = {};              // the others
  ~Cipher() {
    EVP_CIPHER_CTX_free(context);
    OPENSSL_cleanse(&aegis, sizeof(aegis));
  }
};

GaussianStream::GaussianStream() : cipher_(std::make_unique<Cipher>()), next_(buffer_.size()) {
  Narrow();
  Wide();
  unsigned char key_and_nonce[32];
  OsRandomBytes(key_and_nonce, sizeof(key_and_nonce));
  bool ok = true;
  cipher_->kind = PickKeystream();
  if (cipher_->kind != Keystream::kOpenSsl) {
    AegisStart(cipher_->kind, key_and_nonce, key_and_nonce + 16, cipher_->aegis);
  } else {
    cipher_->context = EVP_CIPHER_CTX_new();
    ok = cipher_->context != nullptr &&
         EVP_EncryptInit_ex(cipher_->context, EVP_aes_128_ctr(), nullptr, key_and_nonce, key_and_nonce + 16) == 1;
  }
  OPENSSL_cleanse(key_and_nonce, sizeof(key_and_nonce));
  if (!ok) throw std::runtime_error("could not initialise the noise generator's cipher");
}

GaussianStream::~GaussianStream() { OPENSSL_cleanse(buffer_.data(), sizeof(buffer_)); }

void GaussianStream::Refill() {
  auto* bytes = reinterpret_cast<unsigned char*>(buffer_.data());
  if (cipher_->kind != Keystream::kOpenSsl) {
    static_assert(sizeof(buffer_) % kAegisUpdateBytes == 0, "the buffer holds whole AEGIS updates");
    AegisFill(cipher_->kind, cipher_->aegis, bytes, sizeof(buffer_));
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
