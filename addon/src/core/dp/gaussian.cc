// The Gaussian sampler behind the DP noise. ATen's normal_ (mt19937 under a lock, then Box–Muller)
// took 7 ns a draw on the benchmark machine, most of a private step for an embedding of 640k weights;
// this takes a fraction of that, and its bits come from a cryptographic generator, so no number of
// draws predicts another.
#include "core/dp/gaussian.h"

#include <immintrin.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include <openssl/crypto.h>
#include <openssl/evp.h>

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

// The 256-layer ziggurat of the standard normal density f(x) = exp(-x²/2) (Marsaglia and Tsang
// 2000): r is where the tail starts and v the area of every layer. A word's low 8 bits pick layer i
// and its other 24 bits a signed abscissa h in units of 2^-31; x = h·w[i], and |h| < k[i] means x
// lies in the part of layer i that is under the curve, where it is accepted at once (98.5 % of words).
constexpr int kLayers = 256;
constexpr double kR = 3.6541528853610088;
constexpr double kV = 4.92867323399e-3;
constexpr int64_t kBlock = 256;  // words per pass of the core, a multiple of 8

struct Ziggurat {
  uint32_t k[kLayers];  // all below 2^31, so they compare as signed too
  double w[kLayers];
  double f[kLayers];
  // {k[i], w[i] as float} in one 64-bit entry: one gather fetches both (AVX2 gathers are slow).
  struct alignas(8) Pair {
    uint32_t k;
    float w;
  } pairs[kLayers];
  Ziggurat() {
    const double m = 2147483648.0;  // 2^31
    double x = kR;
    double previous = x;
    const double q = kV / std::exp(-0.5 * x * x);
    k[0] = static_cast<uint32_t>((x / q) * m);
    k[1] = 0;
    w[0] = q / m;
    w[kLayers - 1] = x / m;
    f[0] = 1.0;
    f[kLayers - 1] = std::exp(-0.5 * x * x);
    for (int i = kLayers - 2; i >= 1; --i) {
      x = std::sqrt(-2.0 * std::log(kV / x + std::exp(-0.5 * x * x)));
      k[i + 1] = static_cast<uint32_t>((x / previous) * m);
      previous = x;
      f[i] = std::exp(-0.5 * x * x);
      w[i] = x / m;
    }
    for (int i = 0; i < kLayers; ++i) pairs[i] = {k[i], static_cast<float>(w[i])};
  }
};

const Ziggurat& Tables() {
  static const Ziggurat tables;
  return tables;
}

// The layer; and the abscissa, the midpoint of its cell (multiples of 256 offset by 128), so that h
// and -h are equally likely.
inline int Layer(uint32_t word) { return static_cast<int>(word & (kLayers - 1)); }
inline int32_t Abscissa(uint32_t word) { return static_cast<int32_t>(word & ~uint32_t{kLayers - 1}) + kLayers / 2; }
inline uint32_t Magnitude(int32_t h) { return static_cast<uint32_t>(h < 0 ? -h : h); }  // |h| ≤ 2^31 - 64

const bool kHasAvx2 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}();

// The core for 8 words at a time, in float: candidates into value, and bit b of the result set when
// word b needs the slow path.
__attribute__((target("avx2,fma"))) inline unsigned CandidatesAvx2(const uint32_t* words, const Ziggurat& z,
                                                                   float* value) {
  const __m256i layer_mask = _mm256_set1_epi32(kLayers - 1);
  const __m256i word = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words));
  const __m256i layer = _mm256_and_si256(word, layer_mask);
  const __m256i h = _mm256_add_epi32(_mm256_andnot_si256(layer_mask, word), _mm256_set1_epi32(kLayers / 2));
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
__attribute__((target("avx2,fma"))) inline __m256 CombineAvx2(float* data, const float* value, __m256 amplitude,
                                                              __m256 scale) {
  const __m256 result = _mm256_fmadd_ps(amplitude, _mm256_loadu_ps(value), _mm256_mul_ps(scale, _mm256_loadu_ps(data)));
  _mm256_storeu_ps(data, result);
  // x - x is 0 for finite x and NaN for ±inf and NaN.
  return _mm256_cmp_ps(_mm256_sub_ps(result, result), _mm256_setzero_ps(), _CMP_NEQ_UQ);
}

}  // namespace

struct GaussianStream::Cipher {
  EVP_CIPHER_CTX* context = EVP_CIPHER_CTX_new();
  ~Cipher() { EVP_CIPHER_CTX_free(context); }
};

GaussianStream::GaussianStream() : cipher_(std::make_unique<Cipher>()), next_(buffer_.size()) {
  Tables();
  unsigned char key_and_counter[32];
  OsRandomBytes(key_and_counter, sizeof(key_and_counter));
  const bool ok = cipher_->context != nullptr && EVP_EncryptInit_ex(cipher_->context, EVP_aes_128_ctr(), nullptr,
                                                                    key_and_counter, key_and_counter + 16) == 1;
  OPENSSL_cleanse(key_and_counter, sizeof(key_and_counter));
  if (!ok) throw std::runtime_error("could not initialise AES-128-CTR for the noise generator");
}

GaussianStream::~GaussianStream() { OPENSSL_cleanse(buffer_.data(), sizeof(buffer_)); }

void GaussianStream::Refill() {
  // The keystream itself: AES-CTR encrypts zeros in place.
  std::memset(buffer_.data(), 0, sizeof(buffer_));
  auto* bytes = reinterpret_cast<unsigned char*>(buffer_.data());
  int written = 0;
  if (EVP_EncryptUpdate(cipher_->context, bytes, &written, bytes, static_cast<int>(sizeof(buffer_))) != 1 ||
      written != static_cast<int>(sizeof(buffer_))) {
    throw std::runtime_error("AES-128-CTR failed in the noise generator");
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

double GaussianStream::Slow(uint32_t word) {
  const Ziggurat& z = Tables();
  // A uniform in (0, 1), never 0 or 1, from a fresh word.
  const auto uniform = [this] { return (static_cast<double>(Word()) + 0.5) * 0x1p-32; };
  for (;;) {
    const int32_t h = Abscissa(word);
    const int i = Layer(word);
    if (Magnitude(h) < z.k[i]) return h * z.w[i];
    const double x = h * z.w[i];
    if (i == 0) {
      // The tail beyond r (Marsaglia 1964): r + t with t = -ln(u1)/r, accepted when -2 ln(u2) > t².
      double t;
      double y;
      do {
        t = -std::log(uniform()) / kR;
        y = -std::log(uniform());
      } while (y + y < t * t);
      return h > 0 ? kR + t : -kR - t;
    }
    // A wedge: accepted when a uniform height within the layer falls under the curve.
    if (z.f[i] + uniform() * (z.f[i - 1] - z.f[i]) < std::exp(-0.5 * x * x)) return x;
    word = Word();
  }
}

template <typename T>
bool GaussianStream::AddScaledPortable(T* data, int64_t count, double amplitude, double scale) {
  const Ziggurat& z = Tables();
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
      const int i = Layer(words[j]);
      value[j] = h * z.w[i];
      missed[misses] = words[j];
      where[misses] = j;
      misses += Magnitude(h) >= z.k[i];
    }
    for (int64_t m = 0; m < misses; ++m) value[where[m]] = Slow(missed[m]);
    for (int64_t j = 0; j < block; ++j) {
      data[j] = static_cast<T>(scale * static_cast<double>(data[j]) + amplitude * value[j]);
      finite &= std::isfinite(data[j]);
    }
    data += block;
    count -= block;
  }
  return finite;
}

__attribute__((target("avx2,fma"))) bool GaussianStream::AddScaledAvx2(float* data, int64_t count, float amplitude,
                                                                       float scale) {
  const Ziggurat& z = Tables();
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
    for (int64_t m = 0; m < misses; ++m) value[where[m]] = static_cast<float>(Slow(missed[m]));
    for (int64_t g = 0; g < block; g += 8)
      bad = _mm256_or_ps(bad, CombineAvx2(data + g, value + g, amplitude8, scale8));
    data += block;
    count -= block;
  }
  const bool finite = _mm256_movemask_ps(bad) == 0;
  return (count == 0 || AddScaledPortable(data, count, amplitude, scale)) && finite;
}

bool GaussianStream::AddScaled(float* data, int64_t count, double amplitude, double scale) {
  if (kHasAvx2) return AddScaledAvx2(data, count, static_cast<float>(amplitude), static_cast<float>(scale));
  return AddScaledPortable(data, count, amplitude, scale);
}

bool GaussianStream::AddScaled(double* data, int64_t count, double amplitude, double scale) {
  return AddScaledPortable(data, count, amplitude, scale);
}

}  // namespace bastion::core::dp
