// Cove's small-M dense linear: y = x @ W^T (+ bias) for a few rows of x, float32 or bfloat16 weights.
//
// A decoding step multiplies 1-32 token rows by every weight matrix once: the work is bound by reading the
// weights, and torch's general GEMM (MKL, which takes slow paths on AMD) reaches a fraction of the read
// bandwidth there. This kernel streams each weight row once: a tile of R weight rows against all C <= GROUP
// activation rows (C = 1..8 with AVX-512) with R * C vector accumulators in registers, one per output, FMA
// over K in order, the K tail by masked loads, then a fixed horizontal sum (16 accumulators at once by
// shuffles, with the same pairs) and the bias. So every output is computed by the same arithmetic whichever
// thread, tile or row group it falls in: the result does not depend on the thread count, nor on the other
// rows of the batch.
//
// bfloat16 weights are widened to float32 in registers (a 16-bit shift: exact) and accumulated in float32,
// so a bf16 step reads half the bytes; a bfloat16 input is widened first and the output rounded back to
// bfloat16 (to nearest even, as torch rounds). Where the CPU has AVX512-BF16, bfloat16 inputs times bfloat16
// weights take VDPBF16PS instead: 32 bf16 pairs per instruction, each lane adding its two exact products to
// its float32 accumulator (denormal bf16 inputs read as zero), twice the multiply-adds of the widening path
// per instruction, which a step of 2-8 rows is bound by on a 2-core EPYC. Same fixed order for every output,
// so the same independence of threads and rows.
//
// Branches by what the compiler targets (cove.quant.kernels builds -march=native, or haswell / x86-64 to
// test the others): AVX-512F (16 lanes), AVX2+FMA (8 lanes), plain C++ (8 partial sums). Threads split the
// output features in contiguous ranges with at::parallel_for (torch's pool: torch.set_num_threads holds).
// Registered into the cove_quant op library beside the packed-weight kernels (kernels.cpp).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

#if defined(__AVX512F__)
constexpr int64_t LANES = 16;
using vec = __m512;
inline vec vzero() { return _mm512_setzero_ps(); }
inline __mmask16 tail_mask(int64_t rest) { return static_cast<__mmask16>((1u << rest) - 1u); }
inline vec load(const float* p) { return _mm512_loadu_ps(p); }
inline vec load_tail(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
// an opaque register copy: the compiler would otherwise fold each activation load into every FMA that uses it
// (R loads of it instead of one) and run out of load slots
inline void keep(vec& v) { asm("" : "+v"(v)); }
inline vec load_bf16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline float hsum(vec v) {  // fixed order: 16 -> 8 -> 4 -> 2 -> 1
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}
// hsum of 16 accumulators at once, each by hsum's own pairs (so the same bits), by shuffles that pair two
// accumulators' halves per add: out[i] = hsum(a[i])
inline void hsum16(const vec* a, float* out) {
  vec p[8], t[4], v[2];
  for (int i = 0; i < 8; ++i)  // 16 -> 8: lanes i + 8
    p[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int i = 0; i < 4; ++i)  // 8 -> 4: lanes i + 4; t[i] holds a[4i + q] in 128-bit lane q
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int i = 0; i < 2; ++i)  // 4 -> 2: lanes 0 + 2, 1 + 3
    v[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // 2 -> 1: lane 4q + p holds a[4p + q]; the permutation puts a[i] in lane i
  const vec s = _mm512_add_ps(_mm512_shuffle_ps(v[0], v[1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_ps(v[0], v[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_ps(out, _mm512_permutexvar_ps(order, s));
}
#define COVE_DENSE_HSUM16 1
using mask_t = __mmask16;
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int64_t LANES = 8;
using vec = __m256;
inline vec vzero() { return _mm256_setzero_ps(); }
inline __m256i tail_mask(int64_t rest) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rest)), idx);
}
inline vec load(const float* p) { return _mm256_loadu_ps(p); }
inline vec load_tail(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
inline vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline void keep(vec& v) { asm("" : "+x"(v)); }
inline vec load_bf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float hsum(vec v) {  // fixed order: 8 -> 4 -> 2 -> 1
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}
using mask_t = __m256i;
#else
#define COVE_DENSE_GENERIC 1
constexpr int64_t LANES = 8;
struct vec {
  float v[8];
};
inline vec vzero() { return vec{{0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}}; }
inline int64_t tail_mask(int64_t rest) { return rest; }
inline vec load(const float* p) {
  vec r;
  for (int i = 0; i < 8; ++i) r.v[i] = p[i];
  return r;
}
inline vec load_tail(const float* p, int64_t rest) {
  vec r = vzero();
  for (int64_t i = 0; i < rest; ++i) r.v[i] = p[i];
  return r;
}
inline vec fma(vec a, vec b, vec c) {
  for (int i = 0; i < 8; ++i) c.v[i] += a.v[i] * b.v[i];
  return c;
}
inline void keep(vec&) {}
inline vec load_bf16(const uint16_t* p) {
  vec r;
  for (int i = 0; i < 8; ++i) {
    const uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
    std::memcpy(&r.v[i], &bits, sizeof(float));
  }
  return r;
}
inline float hsum(vec x) {  // the same tree as the vector branches
  float s4[4], s2[2];
  for (int i = 0; i < 4; ++i) s4[i] = x.v[i] + x.v[i + 4];
  for (int i = 0; i < 2; ++i) s2[i] = s4[i] + s4[i + 2];
  return s2[0] + s2[1];
}
using mask_t = int64_t;
#endif

// The explicit prefetch of the weights: how far ahead, in weight rows, and the hint (3 = _MM_HINT_T0; NTA
// measured the same at 2-8 rows, slower at 1). Without it the weights stream at half the speed at 8 rows
// (measured on a 2-core AVX-512 EPYC). Defines, so experiments can build other values.
#ifndef COVE_DENSE_HINT
#define COVE_DENSE_HINT 3
#endif
#ifndef COVE_DENSE_AHEAD
#define COVE_DENSE_AHEAD 8
#endif

// Weight rows per tile, by the activation rows C it is multiplied with: R * C vector accumulators, R weight
// vectors and one activation vector must stay in registers (32 with AVX-512, 16 otherwise), and C is at most
// GROUP (more activation rows take several groups).
#if defined(__AVX512F__)
constexpr int GROUP = 8;
// (one activation row: one weight row at a time, one stream the prefetchers follow; measured faster than 2-8)
constexpr int rows_for(int c) { return c == 1 ? 1 : c <= 6 ? 4 : 2; }
#else
constexpr int GROUP = 4;
constexpr int rows_for(int c) { return c <= 2 ? 4 : c == 3 ? 3 : 2; }
#endif

// bfloat16 weights: the upper half of a float32, so widening is a 16-bit shift (exact)
inline vec wload(const float* p) { return load(p); }
inline vec wload(const uint16_t* p) { return load_bf16(p); }
inline vec wload_tail(const float* p, mask_t mask, int64_t) { return load_tail(p, mask); }
inline vec wload_tail(const uint16_t* p, mask_t, int64_t rest) {
  uint16_t buf[LANES] = {};
  std::copy(p, p + rest, buf);
  return load_bf16(buf);
}

struct Shape {
  int64_t k, ldx, n;  // features, the stride between activation rows, output features
  int64_t full;       // k rounded down to whole vectors
  mask_t mask;        // the K tail's lanes
  int64_t ahead;      // prefetch distance in weight elements
};

// a tile's outputs: each accumulator's fixed horizontal sum, plus the bias
template <int R, int C>
inline void finish(vec (&acc)[R][C], const float* bias, float* y, const Shape& s, int64_t r0, int64_t i0) {
  float sums[R * C];
  int a = 0;
#if defined(COVE_DENSE_HSUM16)
  for (; a + 16 <= R * C; a += 16) hsum16(&acc[0][0] + a, sums + a);
#endif
  for (; a < R * C; ++a) sums[a] = hsum(acc[a / C][a % C]);
  for (int r = 0; r < R; ++r) {
    const float b = bias != nullptr ? bias[r0 + r] : 0.f;
    for (int c = 0; c < C; ++c) y[(i0 + c) * s.n + r0 + r] = sums[r * C + c] + b;
  }
}

// R weight rows (from row r0) x C activation rows (from row i0): R * C independent accumulators, each
// output's arithmetic (one accumulator, FMA over k in order, the masked tail, hsum, bias) the same for every
// R and C. The main loop takes one cache line of weights a step (1 vector of float32 with AVX-512, 2 of
// bfloat16, ...) and prefetches the line `ahead` elements on in every row.
template <typename T, int R, int C>
inline void tile(const T* w, const float* x, const float* bias, float* y, const Shape& s, int64_t r0,
                 int64_t i0) {
  constexpr int64_t LINE = 64 / static_cast<int64_t>(sizeof(T));
  constexpr int64_t STEP = LINE > LANES ? LINE : LANES;
  vec acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = vzero();
  const T* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = w + (r0 + r) * s.k;
  const float* xc[C];
  for (int c = 0; c < C; ++c) xc[c] = x + (i0 + c) * s.ldx;
  int64_t j = 0;
  for (; j + STEP <= s.full; j += STEP) {
#if !defined(COVE_DENSE_GENERIC) && COVE_DENSE_HINT >= 0
    // a prefetch past the end of the weights is harmless
    for (int r = 0; r < R; ++r)
      _mm_prefetch(reinterpret_cast<const char*>(wr[r] + s.ahead + j), static_cast<_mm_hint>(COVE_DENSE_HINT));
#endif
    for (int64_t v = 0; v < STEP; v += LANES) {
      vec wv[R];
      for (int r = 0; r < R; ++r) {
        wv[r] = wload(wr[r] + j + v);
        if constexpr (C > 4) keep(wv[r]);
      }
      for (int c = 0; c < C; ++c) {
        vec xv = load(xc[c] + j + v);
        if constexpr (C > 4) keep(xv);
        for (int r = 0; r < R; ++r) acc[r][c] = fma(wv[r], xv, acc[r][c]);
      }
    }
  }
  for (; j < s.full; j += LANES) {
    vec wv[R];
    for (int r = 0; r < R; ++r) wv[r] = wload(wr[r] + j);
    for (int c = 0; c < C; ++c) {
      vec xv = load(xc[c] + j);
      if constexpr (C > 4) keep(xv);
      for (int r = 0; r < R; ++r) acc[r][c] = fma(wv[r], xv, acc[r][c]);
    }
  }
  if (j < s.k) {
    vec wv[R];
    for (int r = 0; r < R; ++r) wv[r] = wload_tail(wr[r] + j, s.mask, s.k - j);
    for (int c = 0; c < C; ++c) {
      const vec xv = load_tail(xc[c] + j, s.mask);
      for (int r = 0; r < R; ++r) acc[r][c] = fma(wv[r], xv, acc[r][c]);
    }
  }
  finish<R, C>(acc, bias, y, s, r0, i0);
}

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define COVE_DENSE_DPBF16 1
// bf16 weights x bf16 activations (both uint16_t bits): tile's structure, one 64-byte line (32 pairs) of each
// row a VDPBF16PS, the K tail by masked 16-bit loads (zeros add nothing), the same hsum and bias
template <typename T, int R, int C>
inline void tile(const uint16_t* w, const uint16_t* x, const float* bias, float* y, const Shape& s, int64_t r0,
                 int64_t i0) {
  constexpr int64_t STEP = 32;
  vec acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = vzero();
  const uint16_t* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = w + (r0 + r) * s.k;
  const uint16_t* xc[C];
  for (int c = 0; c < C; ++c) xc[c] = x + (i0 + c) * s.ldx;
  const int64_t whole = s.k / STEP * STEP;
  int64_t j = 0;
  for (; j < whole; j += STEP) {
#if COVE_DENSE_HINT >= 0
    for (int r = 0; r < R; ++r)
      _mm_prefetch(reinterpret_cast<const char*>(wr[r] + s.ahead + j), static_cast<_mm_hint>(COVE_DENSE_HINT));
#endif
    __m512i wv[R];
    for (int r = 0; r < R; ++r) {
      wv[r] = _mm512_loadu_si512(wr[r] + j);
      if constexpr (C > 4) asm("" : "+v"(wv[r]));
    }
    for (int c = 0; c < C; ++c) {
      __m512i xv = _mm512_loadu_si512(xc[c] + j);
      if constexpr (C > 4) asm("" : "+v"(xv));
      for (int r = 0; r < R; ++r)
        acc[r][c] = _mm512_dpbf16_ps(acc[r][c], reinterpret_cast<__m512bh&>(wv[r]), reinterpret_cast<__m512bh&>(xv));
    }
  }
  if (j < s.k) {
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (s.k - j)) - 1u);
    __m512i wv[R];
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_epi16(m, wr[r] + j);
    for (int c = 0; c < C; ++c) {
      __m512i xv = _mm512_maskz_loadu_epi16(m, xc[c] + j);
      for (int r = 0; r < R; ++r)
        acc[r][c] = _mm512_dpbf16_ps(acc[r][c], reinterpret_cast<__m512bh&>(wv[r]), reinterpret_cast<__m512bh&>(xv));
    }
  }
  finish<R, C>(acc, bias, y, s, r0, i0);
}
#endif

// weight rows [begin, end) x activation rows [i0, i0 + C): whole tiles, then the rows left one at a time
template <typename T, int C, typename X>
void rows_range(const T* w, const X* x, const float* bias, float* y, const Shape& s, int64_t begin,
                int64_t end, int64_t i0) {
  constexpr int R = rows_for(C);
  int64_t r = begin;
  for (; r + R <= end; r += R) tile<T, R, C>(w, x, bias, y, s, r, i0);
  for (; r < end; ++r) tile<T, 1, C>(w, x, bias, y, s, r, i0);
}

template <typename T, typename X>
void group_range(int64_t c, const T* w, const X* x, const float* bias, float* y, const Shape& s,
                 int64_t begin, int64_t end, int64_t i0) {
  switch (c) {
    case 1: return rows_range<T, 1, X>(w, x, bias, y, s, begin, end, i0);
    case 2: return rows_range<T, 2, X>(w, x, bias, y, s, begin, end, i0);
    case 3: return rows_range<T, 3, X>(w, x, bias, y, s, begin, end, i0);
    case 4: return rows_range<T, 4, X>(w, x, bias, y, s, begin, end, i0);
#if defined(__AVX512F__)
    case 5: return rows_range<T, 5, X>(w, x, bias, y, s, begin, end, i0);
    case 6: return rows_range<T, 6, X>(w, x, bias, y, s, begin, end, i0);
    case 7: return rows_range<T, 7, X>(w, x, bias, y, s, begin, end, i0);
    case 8: return rows_range<T, 8, X>(w, x, bias, y, s, begin, end, i0);
#endif
    default: TORCH_CHECK(false, "cove dense_linear: bad row group ", c);
  }
}

// Threads take contiguous ranges of output features (units of UNIT rows); each range is streamed once per
// group of GROUP activation rows, BLOCK weight rows at a time (so a block is still in L1/L2 for the next
// group when there are more than GROUP rows).
constexpr int64_t UNIT = 8;
constexpr int64_t BLOCK = 32;

template <typename T, typename X = float>
void run(const T* w, const X* x, const float* bias, float* y, int64_t m, const Shape& s) {
  const int64_t units = (s.n + UNIT - 1) / UNIT;
  // units per task: at least ~256K multiply-adds, so a hand-off never costs more than the work it moves
  const int64_t grain = std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, UNIT * s.k * m));
  at::parallel_for(0, units, grain, [&](int64_t ubegin, int64_t uend) {
    const int64_t begin = ubegin * UNIT, end = std::min(s.n, uend * UNIT);
    if (m <= GROUP) {
      group_range<T, X>(m, w, x, bias, y, s, begin, end, 0);
      return;
    }
    for (int64_t b = begin; b < end; b += BLOCK)
      for (int64_t i = 0; i < m; i += GROUP)
        group_range<T, X>(std::min<int64_t>(GROUP, m - i), w, x, bias, y, s, b, std::min(end, b + BLOCK), i);
  });
}

bool is_float_or_bf16(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16;
}

// x (m, k) float32 or bfloat16 (rows may be strided: stride(1) must be 1), w (n, k) float32 or bfloat16
// contiguous, bias (n,) or none -> (m, n) in x's dtype (bfloat16 rounded to nearest even from the float32 sum)
at::Tensor dense_linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(w.device().is_cpu() && is_float_or_bf16(w) && w.dim() == 2 && w.is_contiguous(),
              "cove dense_linear: the weight must be a contiguous 2-D float32 or bfloat16 CPU tensor");
  TORCH_CHECK(x.device().is_cpu() && is_float_or_bf16(x) && x.dim() == 2,
              "cove dense_linear: the input must be a 2-D float32 or bfloat16 CPU tensor");
  const int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  TORCH_CHECK(w.size(1) == k, "cove dense_linear: the input has ", k, " features, the weight ", w.size(1));
#if defined(COVE_DENSE_DPBF16)
  const bool pairs = x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kBFloat16;
#else
  const bool pairs = false;
#endif
  at::Tensor xc = pairs                                                   ? x.contiguous()
                  : x.scalar_type() != at::kFloat                         ? x.to(at::kFloat).contiguous()
                  : (x.stride(1) == 1 && (m <= 1 || x.stride(0) >= k)) ? x
                                                                         : x.contiguous();
  at::Tensor bc;
  const float* bp = nullptr;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->device().is_cpu() && is_float_or_bf16(*bias) && bias->dim() == 1 && bias->size(0) == n,
                "cove dense_linear: the bias must be a float32 or bfloat16 CPU vector of ", n, " values");
    bc = bias->to(at::kFloat).contiguous();
    bp = bc.data_ptr<float>();
  }
  at::Tensor y = at::empty({m, n}, xc.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous));
  if (m > 0 && n > 0) {
    float* yp = y.data_ptr<float>();
    if (k == 0) {
      for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r) yp[i * n + r] = bp != nullptr ? bp[r] : 0.f;
    } else {
      const int64_t full = k / LANES * LANES;
      const Shape s{k, m <= 1 ? k : xc.stride(0), n, full, tail_mask(k - full), COVE_DENSE_AHEAD * k};
      if (pairs) {
#if defined(COVE_DENSE_DPBF16)
        const auto* xb = reinterpret_cast<const uint16_t*>(xc.data_ptr<at::BFloat16>());
        run<uint16_t, uint16_t>(reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), xb, bp, yp, m, s);
#endif
      } else if (w.scalar_type() == at::kFloat) {
        run<float>(w.data_ptr<float>(), xc.data_ptr<float>(), bp, yp, m, s);
      } else {
        run<uint16_t>(reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), xc.data_ptr<float>(), bp, yp,
                      m, s);
      }
    }
  }
  return x.scalar_type() == at::kFloat ? y : y.to(x.scalar_type());
}

// RMSNorm over the last dimension: weight * (x * 1 / sqrt(mean(x^2) + eps)), float32, rows of h values.
// One op for the six torch takes (pow, mean, add, rsqrt, mul, mul): per decoding step a Llama layer has two.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() >= 1,
              "cove rms_norm: the input must be a float32 CPU tensor");
  const int64_t h = x.size(-1);
  TORCH_CHECK(weight.device().is_cpu() && weight.scalar_type() == at::kFloat && weight.dim() == 1 &&
                  weight.size(0) == h && weight.is_contiguous(),
              "cove rms_norm: the weight must be a contiguous float32 CPU vector of ", h, " values");
  const at::Tensor xc = x.contiguous();
  at::Tensor y = at::empty(xc.sizes(), xc.options());
  const int64_t rows = h > 0 ? xc.numel() / h : 0;
  if (rows == 0 || h == 0) return y;
  const float* xp = xc.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t full = h / LANES * LANES;
  const mask_t mask = tail_mask(h - full);
  const float feps = static_cast<float>(eps);
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / h), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = xp + i * h;
      vec acc = vzero();
      int64_t j = 0;
      for (; j < full; j += LANES) {
        const vec v = load(row + j);
        acc = fma(v, v, acc);
      }
      if (j < h) {
        const vec v = load_tail(row + j, mask);
        acc = fma(v, v, acc);
      }
      const float mean = hsum(acc) / static_cast<float>(h);
      const float inv = 1.f / std::sqrt(mean + feps);
      float* out = yp + i * h;
      for (int64_t c = 0; c < h; ++c) out[c] = wp[c] * (row[c] * inv);
    }
  });
  return y;
}

std::string dense_isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2";
#else
  return "generic";
#endif
}

// whether bfloat16 x bfloat16 products take VDPBF16PS (AVX512-BF16) rather than widening to float32
bool dense_bf16_pairs() {
#if defined(COVE_DENSE_DPBF16)
  return true;
#else
  return false;
#endif
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(cove_quant, m) {
  m.def("dense_linear(Tensor x, Tensor w, Tensor? bias) -> Tensor", &dense_linear);
  m.def("dense_bf16_pairs() -> bool", &dense_bf16_pairs);
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor", &rms_norm);
  m.def("dense_isa() -> str", &dense_isa);
}
