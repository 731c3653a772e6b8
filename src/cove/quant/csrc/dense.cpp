// Cove's small-M dense linear: y = x @ W^T (+ bias) for a few rows of x, float32 weights.
//
// A decoding step multiplies 1-32 token rows by every weight matrix once: the work is bound by reading the
// weights, and torch's general GEMM (MKL, which takes slow paths on AMD) reaches a fraction of the read
// bandwidth there. This kernel streams each weight row once: R weight rows at a time, against C activation
// rows at a time (the R rows stay in L1 while the next activation rows take their turn), one vector
// accumulator per output, FMA over K in order, the K tail by masked loads, then a fixed horizontal sum and
// the bias. So every output is computed by the same arithmetic whichever thread, tile or row group it
// falls in: the result does not depend on the thread count, nor on the other rows of the batch.
//
// Branches by what the compiler targets (cove.quant.kernels builds -march=native, or haswell / x86-64 to
// test the others): AVX-512F (16 lanes), AVX2+FMA (8 lanes), plain C++ (8 partial sums). Threads split the
// output features with at::parallel_for (torch's pool: torch.set_num_threads holds). Registered into the
// cove_quant op library beside the packed-weight kernels (kernels.cpp).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
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
inline float hsum(vec v) {  // fixed order: 16 -> 8 -> 4 -> 2 -> 1
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}
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
inline float hsum(vec x) {  // the same tree as the vector branches
  float s4[4], s2[2];
  for (int i = 0; i < 4; ++i) s4[i] = x.v[i] + x.v[i + 4];
  for (int i = 0; i < 2; ++i) s2[i] = s4[i] + s4[i + 2];
  return s2[0] + s2[1];
}
using mask_t = int64_t;
#endif

// weight rows the explicit prefetch runs ahead (measured on a 2-core EPYC: 8 rows of 576 floats, 18 KB)
constexpr int64_t AHEAD = 8;

// R weight rows (from row r0) x C activation rows (from row i0): R * C independent accumulators, each
// output's arithmetic the same for every R and C.
template <int R, int C>
inline void tile(const float* w, const float* x, const float* bias, float* y, int64_t k, int64_t ldx,
                 int64_t n, int64_t r0, int64_t i0, mask_t mask, int64_t full) {
  vec acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = vzero();
  const float* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = w + (r0 + r) * k;
  const float* xc[C];
  for (int c = 0; c < C; ++c) xc[c] = x + (i0 + c) * ldx;
  int64_t j = 0;
  for (; j < full; j += LANES) {
#if !defined(COVE_DENSE_GENERIC)
    // fetch the weights AHEAD rows on explicitly (a prefetch past the end is harmless; a repeat from a
    // second row group finds the line in cache)
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(wr[r] + AHEAD * k + j), _MM_HINT_T0);
#endif
    vec wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load(wr[r] + j);
    for (int c = 0; c < C; ++c) {
      const vec xv = load(xc[c] + j);
      for (int r = 0; r < R; ++r) acc[r][c] = fma(wv[r], xv, acc[r][c]);
    }
  }
  if (j < k) {
    vec wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load_tail(wr[r] + j, mask);
    for (int c = 0; c < C; ++c) {
      const vec xv = load_tail(xc[c] + j, mask);
      for (int r = 0; r < R; ++r) acc[r][c] = fma(wv[r], xv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = bias != nullptr ? bias[r0 + r] : 0.f;
    for (int c = 0; c < C; ++c) y[(i0 + c) * n + r0 + r] = hsum(acc[r][c]) + b;
  }
}

constexpr int64_t ROWS = 4;  // weight rows per tile (the unit threads split)

template <int R>
void rows_block(const float* w, const float* x, const float* bias, float* y, int64_t m, int64_t k, int64_t ldx,
                int64_t n, int64_t r0, mask_t mask, int64_t full) {
  int64_t i = 0;
  if (m == 1) {  // one stream, row after row: what the prefetchers follow best (34-38 GB/s against 24-28)
    for (int r = 0; r < R; ++r) tile<1, 1>(w, x, bias, y, k, ldx, n, r0 + r, 0, mask, full);
    return;
  }
  for (; i + 4 <= m; i += 4) tile<R, 4>(w, x, bias, y, k, ldx, n, r0, i, mask, full);
  for (; i + 2 <= m; i += 2) tile<R, 2>(w, x, bias, y, k, ldx, n, r0, i, mask, full);
  for (; i < m; ++i) tile<R, 1>(w, x, bias, y, k, ldx, n, r0, i, mask, full);
}

// x (m, k) float32 (rows may be strided: stride(1) must be 1), w (n, k) float32 contiguous, bias (n,) or none
at::Tensor dense_linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == at::kFloat && w.dim() == 2 && w.is_contiguous(),
              "cove dense_linear: the weight must be a contiguous 2-D float32 CPU tensor");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2,
              "cove dense_linear: the input must be a 2-D float32 CPU tensor");
  const int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  TORCH_CHECK(w.size(1) == k, "cove dense_linear: the input has ", k, " features, the weight ", w.size(1));
  at::Tensor xc = (x.stride(1) == 1 && (m <= 1 || x.stride(0) >= k)) ? x : x.contiguous();
  const float* bp = nullptr;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->device().is_cpu() && bias->scalar_type() == at::kFloat && bias->dim() == 1 &&
                    bias->size(0) == n && bias->is_contiguous(),
                "cove dense_linear: the bias must be a contiguous float32 CPU vector of ", n, " values");
    bp = bias->data_ptr<float>();
  }
  at::Tensor y = at::empty({m, n}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (m == 0 || n == 0) return y;
  float* yp = y.data_ptr<float>();
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < n; ++r) yp[i * n + r] = bp != nullptr ? bp[r] : 0.f;
    return y;
  }
  const float* xp = xc.data_ptr<float>();
  const int64_t ldx = m <= 1 ? k : xc.stride(0);
  const float* wp = w.data_ptr<float>();
  const int64_t full = k / LANES * LANES;
  const mask_t mask = tail_mask(k - full);
  const int64_t tiles = (n + ROWS - 1) / ROWS;
  // tiles per task: at least ~64K multiply-adds, so a hand-off never costs more than the work it moves
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, ROWS * k * m));
  at::parallel_for(0, tiles, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = t * ROWS;
      if (r0 + ROWS <= n) {
        rows_block<ROWS>(wp, xp, bp, yp, m, k, ldx, n, r0, mask, full);
      } else {
        for (int64_t r = r0; r < n; ++r) rows_block<1>(wp, xp, bp, yp, m, k, ldx, n, r, mask, full);
      }
    }
  });
  return y;
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

}  // namespace

TORCH_LIBRARY_FRAGMENT(cove_quant, m) {
  m.def("dense_linear(Tensor x, Tensor w, Tensor? bias) -> Tensor", &dense_linear);
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor", &rms_norm);
  m.def("dense_isa() -> str", &dense_isa);
}
