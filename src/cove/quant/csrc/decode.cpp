// One decoding step of a Llama-style layer (one new token per row) in one native call.
//
// At one token a row, every op of a layer but the four matrix-vector products is microseconds of work, and
// a step of SmolLM2-135M spent ~5 ms of its ~24 in the Python and dispatch around thirty layers' ~25 small
// ops each (RoPE's slices, roll and products, the cache writes, SDPA's single-query set-up, SiLU * up, the
// residual adds). Here:
//
// - decode_attention: RoPE on the new q and k heads (x * cos + roll(x) * signed_sin, the products and sum
//   Python's apply_rope takes, so the same bits: the library builds with -ffp-contract=off), the rotated k
//   and the v written into the KV cache at the step's position, and softmax(q k^T * scale) v over the
//   filled positions for every query head (grouped-query: head i reads kv head i / (heads / kv_heads)),
//   with an optional (batch, positions) boolean mask of the positions to attend to.
// - decode_layer: the whole layer, x + o(attention(qkv(norm(x)))) then + down(silu(gate) * up)(norm(..)),
//   through the same ops the Python layer calls (cove_quant::rms_norm; dense_linear for float32 weights,
//   qmatmul + bias for packed GGML blocks, as QuantLinear; at::silu and mul), so everything but attention
//   keeps its bits.
//
// bfloat16 layers (a bf16 model: x, norms, weights, cos/sin and the caches bf16) round where the Python layer
// (and transformers') rounds: RoPE's two products and their sum each rounded to bf16, RMSNorm's normalised x
// rounded before the weight product and again after it, every product's output (dense_linear: float32 sums of
// the bf16 pairs, rounded once, as torch's bf16 GEMM), the residual adds, SiLU and its product with up (the
// same at:: ops). Attention reads the bf16 q and cache, sums in float32 and rounds its output once; SDPA's bf16
// kernel rounds the probabilities to bf16 before their product with v, so outputs can differ by a bf16 step.
//
// Attention differs from SDPA's CPU kernel in the last bits (another summation order), as SDPA itself does
// between thread counts. Registered into the cove_quant library beside the other kernels.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

constexpr int64_t LANES = 16;

// out = x * cos + roll(x, d / 2) * signed_sin, as apply_rope computes it
inline void rope(const float* x, const float* cos, const float* sin, float* out, int64_t d) {
  const int64_t half = d / 2;
  for (int64_t i = 0; i < d; ++i) {
    const float a = x[i] * cos[i];
    const float b = x[i < half ? i + half : i - half] * sin[i];
    out[i] = a + b;
  }
}

// the same in bfloat16, each product and the sum rounded to bf16 as torch's bf16 mul and add round them
// (a product of two bf16 values is exact in float32, so the float product rounded once is torch's)
using bf16 = at::BFloat16;
inline void rope(const bf16* x, const bf16* cos, const bf16* sin, bf16* out, int64_t d) {
  const int64_t half = d / 2;
  for (int64_t i = 0; i < d; ++i) {
    const float a = static_cast<float>(bf16(static_cast<float>(x[i]) * static_cast<float>(cos[i])));
    const float b = static_cast<float>(
        bf16(static_cast<float>(x[i < half ? i + half : i - half]) * static_cast<float>(sin[i])));
    out[i] = bf16(a + b);
  }
}

// bf16 -> float32 is exact: the 16 bits on top (written so the compiler vectorises it)
inline float widen(bf16 v) {
  const uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float widen(float v) { return v; }

// float32 or bf16 (widened), 16 independent float32 partial sums (one vector register when the compiler
// vectorises), then a fixed pairwise sum
template <typename T>
inline float dot(const T* a, const T* b, int64_t n) {
  float acc[LANES] = {};
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int64_t j = 0; j < LANES; ++j) acc[j] += widen(a[i + j]) * widen(b[i + j]);
  for (int64_t j = 0; i < n; ++i, ++j) acc[j] += widen(a[i]) * widen(b[i]);
  for (int64_t w = LANES / 2; w > 0; w /= 2)
    for (int64_t j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

void check_cache(const at::Tensor& c, at::ScalarType dtype, int64_t b, int64_t kv, int64_t d, int64_t pos,
                 const char* what) {
  TORCH_CHECK(c.device().is_cpu() && c.scalar_type() == dtype && c.dim() == 4 && c.is_contiguous(),
              "cove decode_attention: the ", what, " cache must be a contiguous 4-D CPU tensor of qkv's dtype");
  TORCH_CHECK(c.size(0) == b && c.size(1) == kv && c.size(3) == d && pos < c.size(2),
              "cove decode_attention: the ", what, " cache has shape ", c.sizes(), ", the step needs (", b,
              ", ", kv, ", > ", pos, ", ", d, ")");
}

// the cache writes and the attention of decode_attention, in T (float or bf16; sums in float32)
template <typename T>
void attend(const at::Tensor& qkv, const at::Tensor& cc, const at::Tensor& sc, const at::Tensor& kcache,
            const at::Tensor& vcache, int64_t pos, const bool* mp, int64_t mstride, int64_t heads,
            int64_t kv_heads, double scale, int64_t d, at::Tensor& out) {
  const int64_t b = qkv.size(0), width = qkv.size(-1), total = pos + 1, capacity = kcache.size(2);
  T* op = out.data_ptr<T>();
  const T* xp = qkv.data_ptr<T>();
  const T* cp = cc.data_ptr<T>();
  const T* sp = sc.data_ptr<T>();
  T* kp = kcache.data_ptr<T>();
  T* vp = vcache.data_ptr<T>();
  // the new keys (rotated) and values into the cache, before any head reads it
  for (int64_t bi = 0; bi < b; ++bi) {
    for (int64_t g = 0; g < kv_heads; ++g) {
      const T* k = xp + bi * width + (heads + g) * d;
      const T* v = xp + bi * width + (heads + kv_heads + g) * d;
      const int64_t at_pos = ((bi * kv_heads + g) * capacity + pos) * d;
      rope(k, cp + bi * d, sp + bi * d, kp + at_pos, d);
      std::copy(v, v + d, vp + at_pos);
    }
  }
  const int64_t group = heads / kv_heads;
  const float fscale = static_cast<float>(scale);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, total * d));
  at::parallel_for(0, b * heads, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> q(d);
    std::vector<float> scores(total), o(d);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bi = task / heads, hh = task % heads, g = hh / group;
      rope(xp + bi * width + hh * d, cp + bi * d, sp + bi * d, q.data(), d);
      const T* keys = kp + (bi * kv_heads + g) * capacity * d;
      const T* values = vp + (bi * kv_heads + g) * capacity * d;
      const bool* keep = mp != nullptr ? mp + bi * mstride : nullptr;
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < total; ++t) {
        if (keep != nullptr && !keep[t]) continue;
        scores[t] = dot(q.data(), keys + t * d, d) * fscale;
        top = std::max(top, scores[t]);
      }
      T* out_row = op + bi * heads * d + hh * d;
      std::fill(o.begin(), o.end(), 0.f);
      if (top == -std::numeric_limits<float>::infinity()) {  // nothing to attend to: zeros, as SDPA
        std::fill(out_row, out_row + d, T(0.f));
        continue;
      }
      float sum = 0.f;
      for (int64_t t = 0; t < total; ++t) {
        if (keep != nullptr && !keep[t]) continue;
        const float p = std::exp(scores[t] - top);
        sum += p;
        const T* v = values + t * d;
        for (int64_t i = 0; i < d; ++i) o[i] += p * widen(v[i]);
      }
      const float inv = 1.f / sum;
      for (int64_t i = 0; i < d; ++i) out_row[i] = T(o[i] * inv);  // rounded once
    }
  });
}

// qkv (b, ..., (heads + 2 kv_heads) * d) contiguous; cos, sin (b, ..., d); caches (b, kv_heads, capacity, d);
// mask (b, >= pos + 1) bool or none -> (b, 1, heads * d)
at::Tensor decode_attention(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin,
                            const at::Tensor& kcache, const at::Tensor& vcache, int64_t pos,
                            const c10::optional<at::Tensor>& mask, int64_t heads, int64_t kv_heads,
                            double scale) {
  TORCH_CHECK(heads > 0 && kv_heads > 0 && heads % kv_heads == 0,
              "cove decode_attention: heads must be a positive multiple of kv_heads");
  const at::ScalarType dtype = qkv.scalar_type();
  TORCH_CHECK(qkv.device().is_cpu() && (dtype == at::kFloat || dtype == at::kBFloat16) && qkv.is_contiguous() &&
                  qkv.dim() >= 2,
              "cove decode_attention: qkv must be a contiguous float32 or bfloat16 CPU tensor");
  const int64_t b = qkv.size(0);
  const int64_t width = qkv.size(-1);
  TORCH_CHECK(b > 0 && qkv.numel() == b * width && width % (heads + 2 * kv_heads) == 0,
              "cove decode_attention: qkv must hold one token per row, (heads + 2 kv_heads) x head_dim wide");
  const int64_t d = width / (heads + 2 * kv_heads);
  TORCH_CHECK(d % 2 == 0, "cove decode_attention: head_dim must be even");
  const at::Tensor cc = cos.contiguous(), sc = sin.contiguous();
  TORCH_CHECK(cc.scalar_type() == dtype && sc.scalar_type() == dtype && cc.numel() == b * d && sc.numel() == b * d,
              "cove decode_attention: cos and sin must have qkv's dtype, one head_dim row per batch row");
  TORCH_CHECK(pos >= 0, "cove decode_attention: the position must be non-negative");
  check_cache(kcache, dtype, b, kv_heads, d, pos, "key");
  check_cache(vcache, dtype, b, kv_heads, d, pos, "value");
  const int64_t total = pos + 1;
  const bool* mp = nullptr;
  int64_t mstride = 0;
  at::Tensor mc;
  if (mask.has_value() && mask->defined()) {
    mc = mask->contiguous();
    TORCH_CHECK(mc.scalar_type() == at::kBool && mc.dim() == 2 && mc.size(0) == b && mc.size(1) >= total,
                "cove decode_attention: the mask must be a (batch, >= position + 1) bool tensor");
    mp = mc.data_ptr<bool>();
    mstride = mc.size(1);
  }
  at::Tensor out = at::empty({b, 1, heads * d}, qkv.options());
  if (dtype == at::kFloat)
    attend<float>(qkv, cc, sc, kcache, vcache, pos, mp, mstride, heads, kv_heads, scale, d, out);
  else
    attend<bf16>(qkv, cc, sc, kcache, vcache, pos, mp, mstride, heads, kv_heads, scale, d, out);
  return out;
}

// RMSNorm of bf16 rows as the Python layer (and transformers) computes it: in float32 x * 1 / sqrt(mean(x^2)
// + eps), rounded to bf16, times the bf16 weight, rounded again
at::Tensor rms_norm_bf16(const at::Tensor& x, const at::Tensor& w, double eps) {
  TORCH_CHECK(w.scalar_type() == at::kBFloat16 && w.dim() == 1 && w.is_contiguous() && w.size(0) == x.size(1),
              "cove decode_layer: a bfloat16 layer's norm weights must be contiguous bf16 vectors of hidden values");
  const at::Tensor xc = x.contiguous();
  const int64_t rows = xc.size(0), h = xc.size(1);
  at::Tensor y = at::empty({rows, h}, xc.options());
  const bf16* xp = xc.data_ptr<bf16>();
  const bf16* wp = w.data_ptr<bf16>();
  bf16* yp = y.data_ptr<bf16>();
  const float feps = static_cast<float>(eps);
  for (int64_t i = 0; i < rows; ++i) {
    const bf16* row = xp + i * h;
    const float inv = 1.f / std::sqrt(dot(row, row, h) / static_cast<float>(h) + feps);
    for (int64_t j = 0; j < h; ++j) yp[i * h + j] = bf16(widen(wp[j]) * widen(bf16(widen(row[j]) * inv)));
  }
  return y;
}

at::Tensor call_rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  if (x.scalar_type() == at::kBFloat16) return rms_norm_bf16(x, w, eps);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("cove_quant::rms_norm", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double)>();
  return op.call(x, w, eps);
}

// one projection of x (m, k) float32 or bf16: qtype < 0: a weight (n, k) of x's dtype through dense_linear;
// else (float32 only) packed GGML blocks (n, row bytes) of that type through qmatmul, then + bias, as
// QuantLinear computes it
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias,
                   int64_t qtype) {
  if (qtype < 0) {
    TORCH_CHECK(w.scalar_type() == x.scalar_type() && (!bias.has_value() || !bias->defined() ||
                                                        bias->scalar_type() == x.scalar_type()),
                "cove decode_layer: a dense projection's weight and bias must have the layer's dtype");
    static auto dense =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("cove_quant::dense_linear", "")
            .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&)>();
    return dense.call(x, w, bias);
  }
  TORCH_CHECK(x.scalar_type() == at::kFloat, "cove decode_layer: packed projections take float32 layers only");
  static auto quant = c10::Dispatcher::singleton()
                          .findSchemaOrThrow("cove_quant::qmatmul", "")
                          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>();
  at::Tensor out = quant.call(x.contiguous(), w, qtype, x.size(1));
  if (bias.has_value() && bias->defined()) out = at::add(out, *bias);
  return out;
}

// x (b, 1, hidden) -> the layer's output (b, 1, hidden). The projections as the Python layer holds them
// (q/k/v and gate/up fused), each a weight of x's dtype (type -1) or (float32 layers) packed blocks of a GGML
// type. A bfloat16 x takes bf16 norms, weights, biases, cos/sin and caches.
at::Tensor decode_layer(const at::Tensor& x, const at::Tensor& attn_norm, const at::Tensor& qkv_w,
                        const c10::optional<at::Tensor>& qkv_b, int64_t qkv_t, const at::Tensor& o_w,
                        const c10::optional<at::Tensor>& o_b, int64_t o_t, const at::Tensor& mlp_norm,
                        const at::Tensor& gate_up_w, const c10::optional<at::Tensor>& gate_up_b,
                        int64_t gate_up_t, const at::Tensor& down_w, const c10::optional<at::Tensor>& down_b,
                        int64_t down_t, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& kcache,
                        const at::Tensor& vcache, int64_t pos, const c10::optional<at::Tensor>& mask,
                        int64_t heads, int64_t kv_heads, double scale, double eps) {
  TORCH_CHECK(x.dim() == 3 && x.size(1) == 1 && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16),
              "cove decode_layer: x must be float32 or bfloat16 (batch, 1, hidden)");
  TORCH_CHECK(attn_norm.scalar_type() == x.scalar_type() && mlp_norm.scalar_type() == x.scalar_type(),
              "cove decode_layer: the norm weights must have x's dtype");
  const int64_t b = x.size(0), hidden = x.size(2);
  const at::Tensor rows = x.reshape({b, hidden});
  const at::Tensor qkv = project(call_rms_norm(rows, attn_norm, eps), qkv_w, qkv_b, qkv_t);
  const at::Tensor att = decode_attention(qkv, cos, sin, kcache, vcache, pos, mask, heads, kv_heads, scale);
  const at::Tensor mid = at::add(rows, project(att.view({b, att.size(2)}), o_w, o_b, o_t));
  const at::Tensor gu = project(call_rms_norm(mid, mlp_norm, eps), gate_up_w, gate_up_b, gate_up_t);
  const int64_t inter = gu.size(1) / 2;
  at::Tensor act = at::silu(gu.narrow(1, 0, inter));
  act.mul_(gu.narrow(1, inter, inter));
  return at::add(mid, project(act, down_w, down_b, down_t)).view({b, 1, hidden});
}

// Every layer of a step in one call: the Python loop around decode_layer cost ~15-25 us a layer (argument
// parsing of 25 values, the cache lookup), ~0.5 ms of a ~17 ms SmolLM2 step. Per layer l: tensors[6 l ..]
// = attn_norm, qkv_w, o_w, mlp_norm, gate_up_w, down_w; biases[4 l ..] and types[4 l ..] = qkv, o,
// gate_up, down; kcaches[l], vcaches[l]. Each layer is decode_layer exactly, so the same bits.
at::Tensor decode_stack(const at::Tensor& x, at::TensorList tensors,
                        const c10::List<c10::optional<at::Tensor>>& biases, at::IntArrayRef types,
                        at::TensorList kcaches, at::TensorList vcaches, const at::Tensor& cos, const at::Tensor& sin,
                        int64_t pos, const c10::optional<at::Tensor>& mask, int64_t heads, int64_t kv_heads,
                        double scale, double eps) {
  const int64_t layers = static_cast<int64_t>(kcaches.size());
  TORCH_CHECK(static_cast<int64_t>(vcaches.size()) == layers &&
                  static_cast<int64_t>(tensors.size()) == 6 * layers &&
                  static_cast<int64_t>(biases.size()) == 4 * layers &&
                  static_cast<int64_t>(types.size()) == 4 * layers,
              "cove decode_stack: per layer, 6 tensors, 4 biases, 4 types and a key and value cache; got ",
              tensors.size(), ", ", biases.size(), ", ", types.size(), ", ", kcaches.size(), " and ",
              vcaches.size());
  at::Tensor h = x;
  for (int64_t l = 0; l < layers; ++l) {
    const at::Tensor* t = tensors.data() + 6 * l;
    const int64_t* ty = types.data() + 4 * l;
    const int64_t j = 4 * l;
    h = decode_layer(h, t[0], t[1], biases.get(j), ty[0], t[2], biases.get(j + 1), ty[1], t[3], t[4],
                     biases.get(j + 2), ty[2], t[5], biases.get(j + 3), ty[3], cos, sin, kcaches[l], vcaches[l],
                     pos, mask, heads, kv_heads, scale, eps);
  }
  return h;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(cove_quant, m) {
  m.def(
      "decode_attention(Tensor qkv, Tensor cos, Tensor sin, Tensor(a!) kcache, Tensor(b!) vcache, int pos, "
      "Tensor? mask, int heads, int kv_heads, float scale) -> Tensor",
      &decode_attention);
  m.def(
      "decode_layer(Tensor x, Tensor attn_norm, Tensor qkv_w, Tensor? qkv_b, int qkv_t, Tensor o_w, Tensor? o_b, "
      "int o_t, Tensor mlp_norm, Tensor gate_up_w, Tensor? gate_up_b, int gate_up_t, Tensor down_w, "
      "Tensor? down_b, int down_t, Tensor cos, Tensor sin, Tensor(a!) kcache, Tensor(b!) vcache, int pos, "
      "Tensor? mask, int heads, int kv_heads, float scale, float eps) -> Tensor",
      &decode_layer);
  m.def(
      "decode_stack(Tensor x, Tensor[] tensors, Tensor?[] biases, int[] types, Tensor(a!)[] kcaches, "
      "Tensor(b!)[] vcaches, Tensor cos, Tensor sin, int pos, Tensor? mask, int heads, int kv_heads, float scale, "
      "float eps) -> Tensor",
      &decode_stack);
}
