// Cove's packed-weight matmul kernels: GGUF block formats read as they are stored.
//
// y = x @ W^T with W (n, k) in GGML blocks (one row = k / block_size consecutive blocks, as in a GGUF
// file) and x (m, k) float32. For Q8_0 / Q4_0 / Q4_1 the activations are quantized once per call to
// int8 blocks of 32 (scale d, and s = d * sum(q) for the offset terms), then every output is a sum of
// integer block dot products: AVX-VNNI / AVX512-VNNI `dpbusd` where the compiler targets it, AVX2
// `maddubs` + `madd` otherwise, plain C elsewhere. The K-quants (Q4_K, Q5_K, Q6_K) and Q5_0 / Q5_1 take
// the same int8 activation blocks (kquant_matmul); without AVX2 they dequantize one weight row at a time
// into a per-thread buffer and take float dot products.
// Threads split the output rows (at::parallel_for: torch's own pool, so no second thread pool fights it).
// Built at first use with -O3 -march=native by cove.quant.kernels; every size is checked before any
// pointer is read.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace {

// GGML type ids (ggml.h) and their block geometry
constexpr int64_t PREFETCH_TILES = 8;
constexpr int64_t Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14;

struct Geometry {
  int64_t elems;
  int64_t bytes;
};

Geometry geometry(int64_t type) {
  switch (type) {
    case Q4_0: return {32, 18};
    case Q4_1: return {32, 20};
    case Q8_0: return {32, 34};
    case Q5_0: return {32, 22};
    case Q5_1: return {32, 24};
    case Q4_K: return {256, 144};
    case Q5_K: return {256, 176};
    case Q6_K: return {256, 210};
    default: TORCH_CHECK(false, "cove_quant: GGML type ", type, " has no kernel");
  }
  return {0, 0};
}

inline float half(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
#if defined(__F16C__)
  return _cvtsh_ss(bits);
#else
  return static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
#endif
}

// ---- activations: int8 blocks of 32 ------------------------------------------------------------------

struct QAct {
  std::vector<int8_t> q;  // (m, k)
  std::vector<float> d;   // (m, k / 32)
  std::vector<float> s;   // (m, k / 32): d * sum(q)
};

void quantize_rows(const float* x, int64_t m, int64_t k, QAct& out) {
  const int64_t nb = k / 32;
  out.q.resize(m * k);
  out.d.resize(m * nb);
  out.s.resize(m * nb);
  at::parallel_for(0, m * nb, 256, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* src = x + b * 32;
      int8_t* q = out.q.data() + b * 32;
      float amax = 0.f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(src[i]));
      const float d = amax / 127.f;
      const float id = d > 0.f ? 1.f / d : 0.f;
      int sum = 0;
      for (int i = 0; i < 32; ++i) {
        const int v = static_cast<int>(std::nearbyint(src[i] * id));
        q[i] = static_cast<int8_t>(v);
        sum += v;
      }
      out.d[b] = d;
      out.s[b] = d * static_cast<float>(sum);
    }
  });
}

// ---- integer block dot products ----------------------------------------------------------------------

#if defined(__AVX2__)
inline __m256i dot_u8s8(__m256i u, __m256i s) {  // 8 int32 partial sums of u8 * s8
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline __m256i nibbles(const uint8_t* qs) {  // 16 bytes -> 32 values 0..15: low nibbles first
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

inline __m256i bits_to_bytes(uint32_t bits) {  // bit i -> byte i: 0xFF if set, else 0
  const __m256i shuffle = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuffle);
  const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(0x7fbfdfeff7fbfdfeULL));
  v = _mm256_or_si256(v, mask);
  return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// R weight rows x C activation rows at once: every weight block is decoded once for C activations and
// every activation block loaded once for R rows; the R * C accumulators are independent FMA chains.
template <int64_t TYPE, int R, int C>
void tile(const uint8_t* w, int64_t row_bytes, const QAct& a, int64_t i0, int64_t k, int64_t nb, float* out,
          int64_t n, int64_t r0) {
  constexpr int64_t bytes = TYPE == Q4_0 ? 18 : TYPE == Q4_1 ? 20 : TYPE == Q5_0 ? 22 : TYPE == Q5_1 ? 24 : 34;
  __m256 acc[R][C];
  float extra[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      acc[r][c] = _mm256_setzero_ps();
      extra[r][c] = 0.f;
    }
  const uint8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = w + (r0 + r) * row_bytes;
  // The R rows are one contiguous stretch, read as R interleaved streams, which the hardware prefetchers
  // follow poorly from DRAM (measured 2 GB/s against 10 for a plain sum): fetch the stretch PREFETCH_TILES
  // tiles ahead explicitly, spread over this tile's blocks (a prefetch past the end is harmless).
  const uint8_t* ahead = rows[0] + PREFETCH_TILES * R * row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t line = 0; line < R * bytes; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + b * R * bytes + line), _MM_HINT_T0);
    }
    __m256i wv[R], wabs[R];
    float dw[R], mw[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = rows[r] + b * bytes;
      dw[r] = half(blk);
      if constexpr (TYPE == Q8_0) {
        wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        wabs[r] = _mm256_sign_epi8(wv[r], wv[r]);
        mw[r] = 0.f;
      } else if constexpr (TYPE == Q5_0 || TYPE == Q5_1) {  // the fifth bits (4 bytes after the scales)
        constexpr int off = TYPE == Q5_0 ? 2 : 4;
        uint32_t qh;
        std::memcpy(&qh, blk + off, 4);
        wv[r] = _mm256_or_si256(nibbles(blk + off + 4), _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
        wabs[r] = wv[r];
        mw[r] = TYPE == Q5_0 ? -16.f * dw[r] : half(blk + 2);
      } else {
        wv[r] = nibbles(blk + (TYPE == Q4_0 ? 2 : 4));
        wabs[r] = wv[r];
        mw[r] = TYPE == Q4_0 ? -8.f * dw[r] : half(blk + 2);
      }
    }
    for (int c = 0; c < C; ++c) {
      const int64_t ab = (i0 + c) * nb + b;
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + ab * 32));
      const float dx = a.d[ab], sx = a.s[ab];
      for (int r = 0; r < R; ++r) {
        // Q8_0: |w| as u8 times x carrying w's sign (u8 * s8 is what the integer dot instructions take)
        const __m256i p = TYPE == Q8_0 ? dot_u8s8(wabs[r], _mm256_sign_epi8(xq, wv[r])) : dot_u8s8(wv[r], xq);
        acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * dx), _mm256_cvtepi32_ps(p), acc[r][c]);
        if constexpr (TYPE != Q8_0) extra[r][c] += mw[r] * sx;
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[(i0 + c) * n + r0 + r] = hsum(acc[r][c]) + extra[r][c];
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__F16C__)
#define COVE_QUANT_ROW8 1
inline int load_u32(const uint8_t* p) {
  int v;
  std::memcpy(&v, p, 4);
  return v;
}

inline short load_i16(const uint8_t* p) {
  short v;
  std::memcpy(&v, p, 2);
  return v;
}

// a tile's 8 results for one activation row: row 2p + h is pair p's half h summed (hsum), plus its offset
// sum e[(2p + h) * stride + stride - 1]
inline void store_rows8(__m512 a0, __m512 a1, __m512 a2, __m512 a3, const float* e, int stride, float* o) {
  const __m512 acc[4] = {a0, a1, a2, a3};
  for (int p = 0; p < 4; ++p) {
    const __m256 lo = _mm512_castps512_ps256(acc[p]);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p]), 1));
    o[2 * p] = hsum(lo) + e[(2 * p) * stride + stride - 1];
    o[2 * p + 1] = hsum(hi) + e[(2 * p + 1) * stride + stride - 1];
  }
}

// Q4_0 / Q4_1 / Q5_0 / Q5_1, 8 weight rows x C activation rows at a time: two weight rows per 512-bit
// register (lanes 0-7 the first, 8-15 the second), and the 8 rows' block scales loaded, converted and
// multiplied as one vector instead of one scalar chain per row (Q5: the fifth bits of two rows are one
// 64-bit mask that adds 16 to the bytes it selects). Every (row, activation) pair's lanes take the same
// operations in the same order as tile<TYPE, R, C> and krow<TYPE, 1, C> (one fmadd per block, then hsum
// plus the offset sum): the same bits.
template <int64_t TYPE, int C>
void tile8(const uint8_t* w, int64_t row_bytes, const QAct& a, int64_t i0, int64_t nb, float* out, int64_t n,
           int64_t r0) {
  constexpr bool five = TYPE == Q5_0 || TYPE == Q5_1;
  constexpr bool with_min = TYPE == Q4_1 || TYPE == Q5_1;  // (d, m) pairs; else x = d * (q - 8 or 16)
  constexpr int64_t bytes = (with_min ? 20 : 18) + (five ? 4 : 0);
  constexpr int high_bits = with_min ? 4 : 2;  // Q5: the 32 fifth bits
  constexpr int off = high_bits + (five ? 4 : 0);
  constexpr float offset = five ? -16.f : -8.f;
  // scale lanes: with a minimum, 8 (d, m) pairs convert into 16 floats (row r's d at lane 2r, m at 2r + 1);
  // else 8 d's (row r at lane r)
  constexpr int stride = with_min ? 2 : 1;
  const uint8_t* rows = w + r0 * row_bytes;
  __m512 acc[4][C];
  __m512 extra[C];
  __m512i lanes[4];
  for (int p = 0; p < 4; ++p) {
    for (int c = 0; c < C; ++c) acc[p][c] = _mm512_setzero_ps();
    lanes[p] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * p * stride)),
                                  _mm256_set1_epi32((2 * p + 1) * stride), 1);
  }
  for (int c = 0; c < C; ++c) extra[c] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(0x10);
  // qwords of (rows 2p, 2p+1 | the same shifted right by 4) -> row 2p low, high nibbles; row 2p+1 ...
  const __m512i pick = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
  const uint8_t* ahead = rows + PREFETCH_TILES * 8 * row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t line = 0; line < 8 * bytes; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + b * 8 * bytes + line), _MM_HINT_T0);
    }
    const uint8_t* blk = rows + b * bytes;
    __m512 f;
    if constexpr (with_min) {
      // built in registers (eight stores and one wide load would miss store-to-load forwarding)
      f = _mm512_cvtph_ps(_mm256_setr_epi32(load_u32(blk), load_u32(blk + row_bytes), load_u32(blk + 2 * row_bytes),
                                            load_u32(blk + 3 * row_bytes), load_u32(blk + 4 * row_bytes),
                                            load_u32(blk + 5 * row_bytes), load_u32(blk + 6 * row_bytes),
                                            load_u32(blk + 7 * row_bytes)));
    } else {
      f = _mm512_castps256_ps512(_mm256_cvtph_ps(
          _mm_setr_epi16(load_i16(blk), load_i16(blk + row_bytes), load_i16(blk + 2 * row_bytes),
                         load_i16(blk + 3 * row_bytes), load_i16(blk + 4 * row_bytes), load_i16(blk + 5 * row_bytes),
                         load_i16(blk + 6 * row_bytes), load_i16(blk + 7 * row_bytes))));
    }
    __m512i wq[4];
    for (int p = 0; p < 4; ++p) {
      const uint8_t* q0 = blk + 2 * p * row_bytes + off;
      const __m256i q2 = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q0))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(q0 + row_bytes)), 1);
      wq[p] = _mm512_and_si512(_mm512_permutex2var_epi64(_mm512_castsi256_si512(q2), pick,
                                                         _mm512_castsi256_si512(_mm256_srli_epi16(q2, 4))),
                               low4);
      if constexpr (five) {  // byte i of the pair: row 2p's element i (i < 32), row 2p + 1's element i - 32
        const uint64_t bits = static_cast<uint32_t>(load_u32(blk + 2 * p * row_bytes + high_bits)) |
                              static_cast<uint64_t>(static_cast<uint32_t>(load_u32(blk + (2 * p + 1) * row_bytes + high_bits))) << 32;
        wq[p] = _mm512_mask_add_epi8(wq[p], _cvtu64_mask64(bits), wq[p], sixteen);
      }
    }
    for (int c = 0; c < C; ++c) {
      const int64_t ab = (i0 + c) * nb + b;
      const float dx = a.d[ab], sx = a.s[ab];
      __m512 scale;
      if constexpr (with_min) {
        // (dx, sx) repeated: one product gives every row's d * dx (even lanes) and m * sx (odd lanes)
        scale = _mm512_mul_ps(f, _mm512_unpacklo_ps(_mm512_set1_ps(dx), _mm512_set1_ps(sx)));
        extra[c] = _mm512_add_ps(extra[c], scale);  // odd lanes: m * s (even lanes: unused)
      } else {
        const __m256 d8 = _mm512_castps512_ps256(f);
        extra[c] = _mm512_castps256_ps512(_mm256_add_ps(
            _mm512_castps512_ps256(extra[c]), _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(offset), d8), _mm256_set1_ps(sx))));
        scale = _mm512_castps256_ps512(_mm256_mul_ps(d8, _mm256_set1_ps(dx)));
      }
      const __m512i xq = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + ab * 32)));
      for (int p = 0; p < 4; ++p) {
        const __m512 prod = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[p], xq));
        acc[p][c] = _mm512_fmadd_ps(_mm512_permutexvar_ps(lanes[p], scale), prod, acc[p][c]);
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    alignas(64) float e[16];
    _mm512_store_ps(e, extra[c]);
    store_rows8(acc[0][c], acc[1][c], acc[2][c], acc[3][c], e, stride, out + (i0 + c) * n + r0);
  }
}

// an 8-row tile's signature (tile8, ktile8_q4k, ktile8_q6k)
using Tile8 = void (*)(const uint8_t*, int64_t, const QAct&, int64_t, int64_t, float*, int64_t, int64_t);

// weight rows from r, 8 at a time while 8 are left, against the m activation rows 4 at a time (four) and
// then one at a time (one); returns the first weight row left
inline int64_t rows8(Tile8 four, Tile8 one, const uint8_t* w, int64_t row_bytes, const QAct& a, int64_t m,
                     int64_t nb, float* out, int64_t n, int64_t r, int64_t end) {
  for (; r + 8 <= end; r += 8) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) four(w, row_bytes, a, i, nb, out, n, r);
    for (; i < m; ++i) one(w, row_bytes, a, i, nb, out, n, r);
  }
  return r;
}
#endif

template <int64_t TYPE>
void rows_range(const uint8_t* w, int64_t row_bytes, const QAct& a, int64_t m, int64_t k, int64_t nb,
                float* out, int64_t n, int64_t begin, int64_t end) {
  int64_t r = begin;
#if defined(COVE_QUANT_ROW8)
  if constexpr (TYPE != Q8_0) r = rows8(tile8<TYPE, 4>, tile8<TYPE, 1>, w, row_bytes, a, m, nb, out, n, r, end);
#endif
  if (m == 1) {
    for (; r + 4 <= end; r += 4) tile<TYPE, 4, 1>(w, row_bytes, a, 0, k, nb, out, n, r);
    for (; r < end; ++r) tile<TYPE, 1, 1>(w, row_bytes, a, 0, k, nb, out, n, r);
    return;
  }
  for (; r + 2 <= end; r += 2) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) tile<TYPE, 2, 4>(w, row_bytes, a, i, k, nb, out, n, r);
    for (; i < m; ++i) tile<TYPE, 2, 1>(w, row_bytes, a, i, k, nb, out, n, r);
  }
  for (; r < end; ++r)
    for (int64_t i = 0; i < m; ++i) tile<TYPE, 1, 1>(w, row_bytes, a, i, k, nb, out, n, r);
}
#endif

// one weight row (nb blocks of 32) . one activation row
float dot_q4(int64_t type, const uint8_t* w, const int8_t* q, const float* d, const float* s, int64_t nb) {
  const int64_t bytes = type == Q4_0 ? 18 : 20;
  const int off = type == Q4_0 ? 2 : 4;
  float extra = 0.f;
#if defined(__AVX2__)
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, w += bytes) {
    const float dw = half(w);
    const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + b * 32));
    const __m256 p = _mm256_cvtepi32_ps(dot_u8s8(nibbles(w + off), xq));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * d[b]), p, acc);
    extra += (type == Q4_0 ? -8.f * dw : half(w + 2)) * s[b];
  }
  return hsum(acc) + extra;
#else
  float total = 0.f;
  for (int64_t b = 0; b < nb; ++b, w += bytes) {
    const float dw = half(w);
    const int8_t* xq = q + b * 32;
    int sum = 0;
    for (int j = 0; j < 16; ++j) {
      sum += (w[off + j] & 0x0F) * xq[j] + (w[off + j] >> 4) * xq[j + 16];
    }
    total += dw * d[b] * static_cast<float>(sum);
    extra += (type == Q4_0 ? -8.f * dw : half(w + 2)) * s[b];
  }
  return total + extra;
#endif
}

float dot_q8(const uint8_t* w, const int8_t* q, const float* d, int64_t nb) {
#if defined(__AVX2__)
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, w += 34) {
    const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2));
    const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + b * 32));
    // |w| as u8 times x carrying w's sign: u8 * s8, the form the integer dot instructions take
    const __m256i p = dot_u8s8(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xq, wq));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half(w) * d[b]), _mm256_cvtepi32_ps(p), acc);
  }
  return hsum(acc);
#else
  float total = 0.f;
  for (int64_t b = 0; b < nb; ++b, w += 34) {
    const int8_t* wq = reinterpret_cast<const int8_t*>(w + 2);
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += wq[j] * q[b * 32 + j];
    total += half(w) * d[b] * static_cast<float>(sum);
  }
  return total;
#endif
}

// ---- dequantization (embedding rows, K-quant kernels, tests) -----------------------------------------

inline void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequant_block(int64_t type, const uint8_t* b, float* y) {
  switch (type) {
    case Q8_0: {
      const float d = half(b);
      for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[2 + j]));
      return;
    }
    case Q4_0:
    case Q4_1: {
      const float d = half(b);
      const float m = type == Q4_0 ? -8.f * d : half(b + 2);
      const uint8_t* qs = b + (type == Q4_0 ? 2 : 4);
      for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
        y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
      }
      return;
    }
    case Q5_0:
    case Q5_1: {
      const float d = half(b);
      const float m = type == Q5_0 ? -16.f * d : half(b + 2);
      const int off = type == Q5_0 ? 2 : 4;
      uint32_t qh;
      std::memcpy(&qh, b + off, 4);
      const uint8_t* qs = b + off + 4;
      for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>((qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) + m;
        y[j + 16] = d * static_cast<float>((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) + m;
      }
      return;
    }
    case Q4_K:
    case Q5_K: {
      const float d = half(b), dmin = half(b + 2);
      const uint8_t* scales = b + 4;
      const uint8_t* qh = b + 16;  // Q5_K only
      const uint8_t* qs = b + (type == Q4_K ? 16 : 48);
      int is = 0;
      uint8_t u1 = 1, u2 = 2;
      for (int j = 0; j < 256; j += 64, qs += 32, is += 2) {
        uint8_t sc, mn;
        scale_min_k4(is, scales, &sc, &mn);
        const float d1 = d * sc, m1 = dmin * mn;
        scale_min_k4(is + 1, scales, &sc, &mn);
        const float d2 = d * sc, m2 = dmin * mn;
        for (int l = 0; l < 32; ++l) {
          const int hi = type == Q5_K && (qh[l] & u1) ? 16 : 0;
          *y++ = d1 * static_cast<float>((qs[l] & 0x0F) + hi) - m1;
        }
        for (int l = 0; l < 32; ++l) {
          const int hi = type == Q5_K && (qh[l] & u2) ? 16 : 0;
          *y++ = d2 * static_cast<float>((qs[l] >> 4) + hi) - m2;
        }
        u1 <<= 2;
        u2 <<= 2;
      }
      return;
    }
    case Q6_K: {
      const uint8_t* ql = b;
      const uint8_t* qh = b + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float d = half(b + 208);
      for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          y[l] = d * sc[is] * q1;
          y[l + 32] = d * sc[is + 2] * q2;
          y[l + 64] = d * sc[is + 4] * q3;
          y[l + 96] = d * sc[is + 6] * q4;
        }
      }
      return;
    }
    default: TORCH_CHECK(false, "cove_quant: GGML type ", type, " has no kernel");
  }
}

void dequant_row(int64_t type, const uint8_t* row, int64_t k, float* y) {
  const Geometry g = geometry(type);
  for (int64_t b = 0; b < k / g.elems; ++b) dequant_block(type, row + b * g.bytes, y + b * g.elems);
}

float dot_f32(const float* a, const float* b, int64_t k) {
#if defined(__AVX2__)
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float total = hsum(acc);
#else
  int64_t i = 0;
  float total = 0.f;
#endif
  for (; i < k; ++i) total += a[i] * b[i];
  return total;
}

// ---- K-quants on int8 activation blocks ----------------------------------------------------------------
// The packed blocks are read as they are stored and multiplied against the activations quantized to int8
// blocks of 32 (QAct), as the Q8_0 / Q4_x / Q5_x kernels do. A Q4_K / Q5_K super-block of 256 is 8
// sub-blocks of 32 with a 6-bit scale and minimum each: one integer block product per activation block,
// times d * scale, minus dmin * min * sum(x). Q6_K's 16 sub-blocks of 16 carry int8 scales: the 8 partial
// sums `dpbusd` gives per block are 4 per sub-block, so a per-lane scale vector weights them.

#if defined(__AVX2__)
// R weight rows r0 .. r0 + R - 1 against C activation rows i0 .. i0 + C - 1: out[(i0 + c) * n + r0 + j].
// Each (row, activation) pair is one chain of the same operations in the same order whatever R and C are
// (the rows of a tile only interleave independent chains): the same bits from every tiling.
template <int64_t TYPE, int R, int C>
void krow(const uint8_t* w, int64_t row_bytes, const QAct& a, int64_t i0, int64_t nb, float* out, int64_t n,
          int64_t r0) {
  __m256 acc[R][C];
  float extra[R][C];
  for (int j = 0; j < R; ++j)
    for (int c = 0; c < C; ++c) {
      acc[j][c] = _mm256_setzero_ps();
      extra[j][c] = 0.f;
    }
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i* xq = reinterpret_cast<const __m256i*>(a.q.data());
  constexpr int64_t bytes = TYPE == Q4_K ? 144 : TYPE == Q5_K ? 176 : 210;
  // as tile: the R rows' stretch PREFETCH_TILES tiles ahead, fetched a super-block's share at a time
  const uint8_t* ahead = w + (r0 + PREFETCH_TILES * R) * row_bytes;
  auto prefetch = [&](int64_t s) {
    for (int64_t line = 0; line < R * bytes; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + s * R * bytes + line), _MM_HINT_T0);
    }
  };
  if constexpr (TYPE == Q6_K) {
    const __m256i three = _mm256_set1_epi8(3), bias = _mm256_set1_epi8(32);
    for (int64_t s = 0; s < nb / 8; ++s) {
      prefetch(s);
      for (int j = 0; j < R; ++j) {
        const uint8_t* blk = w + (r0 + j) * row_bytes + s * bytes;
        const float d = half(blk + 208);
        const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
        for (int h = 0; h < 2; ++h) {
          const __m256i qa = load32(blk + 64 * h), qb = load32(blk + 64 * h + 32), hv = load32(blk + 128 + 32 * h);
          const __m256i g[4] = {
              _mm256_or_si256(_mm256_and_si256(qa, low4), _mm256_slli_epi16(_mm256_and_si256(hv, three), 4)),
              _mm256_or_si256(_mm256_and_si256(qb, low4),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 2), three), 4)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), low4),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 4), three), 4)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), low4),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 6), three), 4)),
          };
          for (int q = 0; q < 4; ++q) {
            const float s0 = d * sc[8 * h + 2 * q], s1 = d * sc[8 * h + 2 * q + 1];
            const __m256 scale = _mm256_set_ps(s1, s1, s1, s1, s0, s0, s0, s0);  // lanes 0-3: values 0-15
            for (int c = 0; c < C; ++c) {
              const int64_t ab = (i0 + c) * nb + s * 8 + 4 * h + q;
              const __m256i x = _mm256_loadu_si256(xq + ab);
              const __m256i p = _mm256_sub_epi32(dot_u8s8(g[q], x), dot_u8s8(bias, x));  // (q - 32) . x
              acc[j][c] =
                  _mm256_fmadd_ps(_mm256_mul_ps(scale, _mm256_set1_ps(a.d[ab])), _mm256_cvtepi32_ps(p), acc[j][c]);
            }
          }
        }
      }
    }
  } else {  // Q4_K, Q5_K
    const __m256i one = _mm256_set1_epi8(1);
    for (int64_t s = 0; s < nb / 8; ++s) {
      prefetch(s);
      for (int j = 0; j < R; ++j) {
        const uint8_t* blk = w + (r0 + j) * row_bytes + s * bytes;
        // the 8 6-bit scales and minimums (scale_min_k4's packing) unpacked 4 bytes at a time
        uint32_t u[4];
        std::memcpy(u, blk + 4, 12);
        const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
        u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
        const uint32_t mins_low = u[1] & m6;
        u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
        u[2] = mins_low;
        u[0] &= m6;  // now bytes 0-7: scales, 8-15: minimums
        const __m256i scm = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(u)));
        const __m256i mnm = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(u + 2)));
        alignas(32) float ds[8], dm[8];
        _mm256_store_ps(ds, _mm256_mul_ps(_mm256_set1_ps(half(blk)), _mm256_cvtepi32_ps(scm)));
        _mm256_store_ps(dm, _mm256_mul_ps(_mm256_set1_ps(half(blk + 2)), _mm256_cvtepi32_ps(mnm)));
        const uint8_t* qs = blk + (TYPE == Q4_K ? 16 : 48);
        const __m256i hv = TYPE == Q5_K ? load32(blk + 16) : _mm256_setzero_si256();
        for (int q = 0; q < 4; ++q) {
          const __m256i raw = load32(qs + 32 * q);
          __m256i lo = _mm256_and_si256(raw, low4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
          if constexpr (TYPE == Q5_K) {
            const __m128i s0 = _mm_cvtsi32_si128(2 * q), s1 = _mm_cvtsi32_si128(2 * q + 1);
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hv, s0), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(hv, s1), one), 4));
          }
          for (int c = 0; c < C; ++c) {
            const int64_t ab = (i0 + c) * nb + s * 8 + 2 * q;
            const __m256 p0 = _mm256_cvtepi32_ps(dot_u8s8(lo, _mm256_loadu_si256(xq + ab)));
            const __m256 p1 = _mm256_cvtepi32_ps(dot_u8s8(hi, _mm256_loadu_si256(xq + ab + 1)));
            acc[j][c] = _mm256_fmadd_ps(_mm256_set1_ps(ds[2 * q] * a.d[ab]), p0, acc[j][c]);
            acc[j][c] = _mm256_fmadd_ps(_mm256_set1_ps(ds[2 * q + 1] * a.d[ab + 1]), p1, acc[j][c]);
            extra[j][c] -= dm[2 * q] * a.s[ab] + dm[2 * q + 1] * a.s[ab + 1];
          }
        }
      }
    }
  }
  for (int j = 0; j < R; ++j)
    for (int c = 0; c < C; ++c) out[(i0 + c) * n + r0 + j] = hsum(acc[j][c]) + extra[j][c];
}

#if defined(COVE_QUANT_ROW8)
inline __m256i load8_u32(const uint8_t* p, int64_t stride) {  // the u32 at p + r * stride, r = 0..7
  return _mm256_setr_epi32(load_u32(p), load_u32(p + stride), load_u32(p + 2 * stride), load_u32(p + 3 * stride),
                           load_u32(p + 4 * stride), load_u32(p + 5 * stride), load_u32(p + 6 * stride),
                           load_u32(p + 7 * stride));
}

inline __m512i load_pair(const uint8_t* p, int64_t row_bytes) {  // 32 bytes of a row, then of the next row
  return _mm512_inserti64x4(_mm512_castsi256_si512(load32(p)), load32(p + row_bytes), 1);
}

inline __m512 spread(__m512i lanes, __m256 v) {  // the 8 row lanes of v -> a row pair's 2 x 8 lanes
  return _mm512_permutexvar_ps(lanes, _mm512_castps256_ps512(v));
}

// Q4_K, 8 weight rows x C activation rows: as tile8, two rows per 512-bit register (a sub-block of 32
// each), and the 8 rows' super-block scales unpacked as vectors across the rows (row r in lane r). Each
// (row, activation) pair's lanes take krow<Q4_K, R, C>'s operations in its order: the same bits.
template <int C>
void ktile8_q4k(const uint8_t* w, int64_t row_bytes, const QAct& a, int64_t i0, int64_t nb, float* out, int64_t n,
                int64_t r0) {
  constexpr int64_t bytes = 144;
  const uint8_t* rows = w + r0 * row_bytes;
  __m512 acc[4][C];
  __m256 extra[C];
  __m512i lanes[4];
  for (int p = 0; p < 4; ++p) {
    for (int c = 0; c < C; ++c) acc[p][c] = _mm512_setzero_ps();
    lanes[p] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * p)), _mm256_set1_epi32(2 * p + 1), 1);
  }
  for (int c = 0; c < C; ++c) extra[c] = _mm256_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i evens_odds = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m256i m6 = _mm256_set1_epi8(0x3f), m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03);
  const __m256i byte = _mm256_set1_epi32(0xFF);
  const uint8_t* ahead = rows + PREFETCH_TILES * 8 * row_bytes;
  for (int64_t s = 0; s < nb / 8; ++s) {
    for (int64_t line = 0; line < 8 * bytes; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + s * 8 * bytes + line), _MM_HINT_T0);
    }
    const uint8_t* blk = rows + s * bytes;
    // (d, dmin) of each row -> d in lanes 0-7, dmin in 8-15
    const __m512 f = _mm512_permutexvar_ps(evens_odds, _mm512_cvtph_ps(load8_u32(blk, row_bytes)));
    const __m256 d8 = _mm512_castps512_ps256(f);
    const __m256 dmin8 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
    // krow's unpacking of the 12 scale bytes, on the 8 rows at once
    const __m256i u0 = load8_u32(blk + 4, row_bytes), u1 = load8_u32(blk + 8, row_bytes),
                  u2 = load8_u32(blk + 12, row_bytes);
    const __m256i sc[2] = {_mm256_and_si256(u0, m6),
                           _mm256_or_si256(_mm256_and_si256(u2, m4),
                                           _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), m2), 4))};
    const __m256i mn[2] = {_mm256_and_si256(u1, m6),
                           _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m4),
                                           _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), m2), 4))};
    for (int q = 0; q < 4; ++q) {
      __m256 ds[2], dm[2];  // sub-blocks 2q, 2q + 1: the 8 rows' d * scale, dmin * min
      for (int t = 0; t < 2; ++t) {
        const int j = 2 * q + t;
        const __m256i scj = _mm256_and_si256(_mm256_srli_epi32(sc[j / 4], 8 * (j % 4)), byte);
        const __m256i mnj = _mm256_and_si256(_mm256_srli_epi32(mn[j / 4], 8 * (j % 4)), byte);
        ds[t] = _mm256_mul_ps(d8, _mm256_cvtepi32_ps(scj));
        dm[t] = _mm256_mul_ps(dmin8, _mm256_cvtepi32_ps(mnj));
      }
      __m512i lo[4], hi[4];
      for (int p = 0; p < 4; ++p) {
        const __m512i raw = load_pair(blk + 2 * p * row_bytes + 16 + 32 * q, row_bytes);
        lo[p] = _mm512_and_si512(raw, low4);
        hi[p] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
      }
      for (int c = 0; c < C; ++c) {
        const int64_t ab = (i0 + c) * nb + s * 8 + 2 * q;
        const __m512i x0 = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + ab * 32)));
        const __m512i x1 = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + (ab + 1) * 32)));
        const __m256 s0 = _mm256_mul_ps(ds[0], _mm256_set1_ps(a.d[ab]));
        const __m256 s1 = _mm256_mul_ps(ds[1], _mm256_set1_ps(a.d[ab + 1]));
        for (int p = 0; p < 4; ++p) {
          const __m512 p0 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[p], x0));
          const __m512 p1 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), hi[p], x1));
          acc[p][c] = _mm512_fmadd_ps(spread(lanes[p], s0), p0, acc[p][c]);
          acc[p][c] = _mm512_fmadd_ps(spread(lanes[p], s1), p1, acc[p][c]);
        }
        extra[c] = _mm256_sub_ps(extra[c], _mm256_add_ps(_mm256_mul_ps(dm[0], _mm256_set1_ps(a.s[ab])),
                                                         _mm256_mul_ps(dm[1], _mm256_set1_ps(a.s[ab + 1]))));
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    alignas(32) float e[8];
    _mm256_store_ps(e, extra[c]);
    store_rows8(acc[0][c], acc[1][c], acc[2][c], acc[3][c], e, 1, out + (i0 + c) * n + r0);
  }
}

// Q6_K, 8 weight rows x C activation rows: two rows per 512-bit register (a block of 32 each: lanes 0-3 /
// 4-7 the first row's two sub-blocks of 16, 8-11 / 12-15 the second's); each row's 16 d * scale products
// one vector, a pair's block scales picked from two of them by one permute. (q - 32) . x is the integer
// dot product started from -32 * sum(x) per lane (the same int32s as krow's difference of two products),
// then krow<Q6_K, R, C>'s float operations in its order: the same bits.
template <int C>
void ktile8_q6k(const uint8_t* w, int64_t row_bytes, const QAct& a, int64_t i0, int64_t nb, float* out, int64_t n,
                int64_t r0) {
  constexpr int64_t bytes = 210;
  const uint8_t* rows = w + r0 * row_bytes;
  __m512 acc[4][C];
  for (int p = 0; p < 4; ++p)
    for (int c = 0; c < C; ++c) acc[p][c] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(3), bias = _mm512_set1_epi8(32);
  const uint8_t* ahead = rows + PREFETCH_TILES * 8 * row_bytes;
  for (int64_t s = 0; s < nb / 8; ++s) {
    for (int64_t line = 0; line < 8 * bytes; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + s * 8 * bytes + line), _MM_HINT_T0);
    }
    const uint8_t* blk = rows + s * bytes;
    __m512 ds[8];  // row r: lane i = d * scale i
    for (int r = 0; r < 8; ++r) {
      const uint8_t* b = blk + r * row_bytes;
      const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192))));
      ds[r] = _mm512_mul_ps(_mm512_set1_ps(half(b + 208)), sc);
    }
    for (int h = 0; h < 2; ++h) {
      __m512i g[4][4];  // [pair][block of the half]
      for (int p = 0; p < 4; ++p) {
        const uint8_t* b = blk + 2 * p * row_bytes;
        const __m512i qa = load_pair(b + 64 * h, row_bytes), qb = load_pair(b + 64 * h + 32, row_bytes),
                      hv = load_pair(b + 128 + 32 * h, row_bytes);
        g[p][0] = _mm512_or_si512(_mm512_and_si512(qa, low4), _mm512_slli_epi16(_mm512_and_si512(hv, three), 4));
        g[p][1] = _mm512_or_si512(_mm512_and_si512(qb, low4),
                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hv, 2), three), 4));
        g[p][2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(qa, 4), low4),
                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hv, 4), three), 4));
        g[p][3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(qb, 4), low4),
                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hv, 6), three), 4));
      }
      for (int q = 0; q < 4; ++q) {
        const int i = 8 * h + 2 * q;  // the block's two sub-blocks: i, i + 1
        const __m512i pick = _mm512_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1, 16 + i, 16 + i, 16 + i, 16 + i,
                                               17 + i, 17 + i, 17 + i, 17 + i);
        __m512 scale[4];
        for (int p = 0; p < 4; ++p) scale[p] = _mm512_permutex2var_ps(ds[2 * p], pick, ds[2 * p + 1]);
        for (int c = 0; c < C; ++c) {
          const int64_t ab = (i0 + c) * nb + s * 8 + 4 * h + q;
          const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + ab * 32)));
          const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, x));
          const __m512 dx = _mm512_set1_ps(a.d[ab]);
          for (int p = 0; p < 4; ++p) {
            const __m512 prod = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, g[p][q], x));
            acc[p][c] = _mm512_fmadd_ps(_mm512_mul_ps(scale[p], dx), prod, acc[p][c]);
          }
        }
      }
    }
  }
  const float zero[8] = {};  // krow's (zero) offset sums: even a -0 sum comes out as krow's +0
  for (int c = 0; c < C; ++c) store_rows8(acc[0][c], acc[1][c], acc[2][c], acc[3][c], zero, 1, out + (i0 + c) * n + r0);
}
#endif

template <int64_t TYPE>
void krows_range(const uint8_t* w, int64_t row_bytes, const QAct& a, int64_t m, int64_t nb, float* out,
                 int64_t n, int64_t begin, int64_t end) {
  int64_t r = begin;
#if defined(COVE_QUANT_ROW8)
  if constexpr (TYPE == Q4_K) r = rows8(ktile8_q4k<4>, ktile8_q4k<1>, w, row_bytes, a, m, nb, out, n, r, end);
  if constexpr (TYPE == Q6_K) r = rows8(ktile8_q6k<4>, ktile8_q6k<1>, w, row_bytes, a, m, nb, out, n, r, end);
#endif
  if (m == 1) {  // four rows' independent chains against the one activation row
    for (; r + 4 <= end; r += 4) krow<TYPE, 4, 1>(w, row_bytes, a, 0, nb, out, n, r);
  }
  for (; r + 2 <= end; r += 2) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) krow<TYPE, 2, 4>(w, row_bytes, a, i, nb, out, n, r);
    for (; i < m; ++i) krow<TYPE, 2, 1>(w, row_bytes, a, i, nb, out, n, r);
  }
  for (; r < end; ++r) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) krow<TYPE, 1, 4>(w, row_bytes, a, i, nb, out, n, r);
    for (; i < m; ++i) krow<TYPE, 1, 1>(w, row_bytes, a, i, nb, out, n, r);
  }
}

// y (m, n) = x @ W^T for the types above: true when this build has the kernel (else the caller's path)
bool kquant_matmul(const float* x, const uint8_t* w, int64_t type, int64_t m, int64_t k, int64_t n,
                   int64_t row_bytes, float* out) {
  const int64_t nb = k / 32;
  QAct a;
  quantize_rows(x, m, k, a);
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, nb * m));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    switch (type) {
      case Q4_K: return krows_range<Q4_K>(w, row_bytes, a, m, nb, out, n, begin, end);
      case Q5_K: return krows_range<Q5_K>(w, row_bytes, a, m, nb, out, n, begin, end);
      case Q6_K: return krows_range<Q6_K>(w, row_bytes, a, m, nb, out, n, begin, end);
      case Q5_0: return rows_range<Q5_0>(w, row_bytes, a, m, k, nb, out, n, begin, end);
      default: return rows_range<Q5_1>(w, row_bytes, a, m, k, nb, out, n, begin, end);
    }
  });
  return true;
}
#else
bool kquant_matmul(const float*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, int64_t, float*) {
  return false;
}
#endif

// ---- checks and ops ----------------------------------------------------------------------------------

Geometry check_weight(const at::Tensor& w, int64_t type, int64_t k) {
  const Geometry g = geometry(type);
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == at::kByte && w.dim() == 2 && w.is_contiguous(),
              "cove_quant: packed weights must be a contiguous 2-D uint8 CPU tensor");
  TORCH_CHECK(k > 0 && k % g.elems == 0, "cove_quant: in_features ", k, " is not a multiple of ", g.elems);
  TORCH_CHECK(w.size(1) == k / g.elems * g.bytes, "cove_quant: a packed row holds ", w.size(1),
              " bytes, type ", type, " with in_features ", k, " needs ", k / g.elems * g.bytes);
  return g;
}

at::Tensor qmatmul(const at::Tensor& x, const at::Tensor& w, int64_t type, int64_t k) {
  const Geometry g = check_weight(w, type, k);
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous(),
              "cove_quant: activations must be a contiguous 2-D float32 CPU tensor");
  TORCH_CHECK(x.size(1) == k, "cove_quant: activations have ", x.size(1), " features, weights ", k);
  const int64_t m = x.size(0), n = w.size(0), nb = k / g.elems, row_bytes = w.size(1);
  at::Tensor y = at::empty({m, n}, x.options());
  float* out = y.data_ptr<float>();
  const uint8_t* wp = w.data_ptr<uint8_t>();
  if (m == 0 || n == 0) return y;
  const bool packed_kernel = type == Q4_K || type == Q5_K || type == Q6_K || type == Q5_0 || type == Q5_1;
  if (packed_kernel && kquant_matmul(x.data_ptr<float>(), wp, type, m, k, n, row_bytes, out)) return y;
  // rows per task: enough block products per task that splitting pays for the hand-off
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, nb * m));
  if (type == Q4_0 || type == Q4_1 || type == Q8_0) {
    QAct a;
    quantize_rows(x.data_ptr<float>(), m, k, a);
    at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
#if defined(__AVX2__)
      if (type == Q8_0) return rows_range<Q8_0>(wp, row_bytes, a, m, k, nb, out, n, begin, end);
      if (type == Q4_0) return rows_range<Q4_0>(wp, row_bytes, a, m, k, nb, out, n, begin, end);
      return rows_range<Q4_1>(wp, row_bytes, a, m, k, nb, out, n, begin, end);
#endif
      for (int64_t r = begin; r < end; ++r) {
        const uint8_t* row = wp + r * row_bytes;
        for (int64_t i = 0; i < m; ++i) {
          const int8_t* q = a.q.data() + i * k;
          const float* d = a.d.data() + i * nb;
          out[i * n + r] = type == Q8_0 ? dot_q8(row, q, d, nb)
                                        : dot_q4(type, row, q, d, a.s.data() + i * nb, nb);
        }
      }
    });
  } else {
    const float* xp = x.data_ptr<float>();
    at::parallel_for(0, n, std::max<int64_t>(1, grain / 8), [&](int64_t begin, int64_t end) {
      std::vector<float> buf(k);
      for (int64_t r = begin; r < end; ++r) {
        dequant_row(type, wp + r * row_bytes, k, buf.data());
        for (int64_t i = 0; i < m; ++i) out[i * n + r] = dot_f32(buf.data(), xp + i * k, k);
      }
    });
  }
  return y;
}

// rows `index` of a packed (n, k) matrix, dequantized: (len(index), k) float32
at::Tensor dequant_rows(const at::Tensor& w, const at::Tensor& index, int64_t type, int64_t k) {
  check_weight(w, type, k);
  TORCH_CHECK(index.device().is_cpu() && index.scalar_type() == at::kLong && index.dim() == 1 &&
                  index.is_contiguous(),
              "cove_quant: row indices must be a contiguous 1-D int64 CPU tensor");
  const int64_t n = w.size(0), rows = index.size(0), row_bytes = w.size(1);
  const int64_t* idx = index.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows; ++i) {
    TORCH_CHECK(idx[i] >= 0 && idx[i] < n, "cove_quant: row index ", idx[i], " is out of range for ", n, " rows");
  }
  at::Tensor y = at::empty({rows, k}, w.options().dtype(at::kFloat));
  float* out = y.data_ptr<float>();
  const uint8_t* wp = w.data_ptr<uint8_t>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dequant_row(type, wp + idx[i] * row_bytes, k, out + i * k);
  });
  return y;
}

inline void store_half(uint8_t* p, float v) {
  const uint16_t bits = c10::Half(v).x;  // round to nearest even, as numpy's astype(float16)
  std::memcpy(p, &bits, 2);
}

// float32 (n, k) -> packed (n, row bytes), rounding as ggml's reference quantizers (quantize_row_*_ref)
at::Tensor quantize(const at::Tensor& w, int64_t type) {
  TORCH_CHECK(type == Q8_0 || type == Q4_0 || type == Q4_1, "cove_quant: no quantizer for GGML type ", type);
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == at::kFloat && w.dim() == 2 && w.is_contiguous(),
              "cove_quant: weights to quantize must be a contiguous 2-D float32 CPU tensor");
  const int64_t n = w.size(0), k = w.size(1);
  const Geometry g = geometry(type);
  TORCH_CHECK(k > 0 && k % 32 == 0, "cove_quant: in_features ", k, " is not a multiple of 32");
  const int64_t nb = k / 32;
  at::Tensor out = at::empty({n, nb * g.bytes}, w.options().dtype(at::kByte));
  const float* src = w.data_ptr<float>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  at::parallel_for(0, n * nb, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* x = src + b * 32;
      uint8_t* y = dst + b * g.bytes;
      if (type == Q8_0) {
        float amax = 0.f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
        store_half(y, d);
        for (int j = 0; j < 32; ++j) y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
      } else if (type == Q4_1) {
        float lo = x[0], hi = x[0];
        for (int j = 1; j < 32; ++j) {
          lo = std::min(lo, x[j]);
          hi = std::max(hi, x[j]);
        }
        const float d = (hi - lo) / 15.f, id = d != 0.f ? 1.f / d : 0.f;
        store_half(y, d);
        store_half(y + 2, lo);
        for (int j = 0; j < 16; ++j) {
          const int a = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - lo) * id + 0.5f)));
          const int c = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - lo) * id + 0.5f)));
          y[4 + j] = static_cast<uint8_t>(a | (c << 4));
        }
      } else {
        float amax = 0.f, extreme = 0.f;
        for (int j = 0; j < 32; ++j) {
          if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            extreme = x[j];
          }
        }
        const float d = extreme / -8.f, id = d != 0.f ? 1.f / d : 0.f;
        store_half(y, d);
        for (int j = 0; j < 16; ++j) {
          const int a = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
          const int c = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
          y[2 + j] = static_cast<uint8_t>(a | (c << 4));
        }
      }
    }
  });
  return out;
}

// what this build was compiled for: the dispatch decided at build time by -march=native
std::string isa() {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return "avx2+avx512vnni";
#elif defined(__AVXVNNI__)
  return "avx2+avxvnni";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "scalar";
#endif
}

// at::parallel_for sets up the calling thread's OpenMP thread count lazily, on its first call in that thread,
// through a thread_local flag of the library that includes it: this one's, not libtorch's. That first call
// resets the count to torch's process-wide one, so a thread that set its own count (omp_set_num_threads, as
// cove.generation.continuous does for its worker) calls this first, or its first kernel undoes the setting.
void init_threads() { at::internal::lazy_init_num_threads(); }

}  // namespace

TORCH_LIBRARY(cove_quant, m) {
  m.def("qmatmul(Tensor x, Tensor w, int type, int k) -> Tensor", &qmatmul);
  m.def("dequant_rows(Tensor w, Tensor index, int type, int k) -> Tensor", &dequant_rows);
  m.def("quantize(Tensor w, int type) -> Tensor", &quantize);
  m.def("isa() -> str", &isa);
  m.def("init_threads() -> ()", &init_threads);
}
