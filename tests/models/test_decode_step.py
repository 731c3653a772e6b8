"""The Llama family's native one-token step (csrc/decode.cpp) against its Python layers: the same cache
contents (RoPE and the cache writes keep their bits), logits within a float32 summation order, and the
Python layers whenever a hook, a gradient or another dtype asks for them."""

from __future__ import annotations

import pytest
import torch

import cove
from cove.models import llama
from cove.models.kv_cache import KVCache
from cove.quant import kernels

pytestmark = pytest.mark.skipif(
    not kernels.native_available() or kernels.dense_rows() == 0, reason="no native kernels"
)


def tiny(model_type: str = "llama", **overrides) -> torch.nn.Module:
    options = dict(
        vocab_size=61,
        hidden_size=48,
        intermediate_size=40,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    options.update(overrides)
    config = cove.AutoConfig.for_model(model_type, **options)
    torch.manual_seed(0)
    return cove.AutoModelForCausalLM.from_config(config).eval()


def decode(model, ids, mask, steps: int, *, native: bool, monkeypatch) -> tuple[torch.Tensor, KVCache]:
    """Prefill, then ``steps`` one-token passes (fed the same tokens); logits (batch, steps, vocab)."""
    if not native:
        monkeypatch.setattr(llama.LlamaModel, "_decode_step", lambda *args, **kwargs: None)
    cache = KVCache(model.config.num_hidden_layers, capacity=ids.shape[1] + steps)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = []
    with torch.inference_mode():
        model(ids, attention_mask=mask, position_ids=positions, past_key_values=cache)
        for i in range(steps):
            mask = torch.cat((mask, mask.new_ones(mask.shape[0], 1)), dim=1)
            positions = positions[:, -1:] + 1
            token = ids[:, (i % ids.shape[1]) : (i % ids.shape[1]) + 1]
            step = model(token, attention_mask=mask, position_ids=positions, past_key_values=cache)
            out.append(step.logits)
    monkeypatch.undo()
    return torch.cat(out, dim=1), cache


def padded() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(3, 61, (3, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    mask[2, :4] = 0
    return ids, mask


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])  # qwen2: q/k/v biases
def test_native_step_matches_the_python_layers(model_type, monkeypatch):
    model = tiny(model_type)
    ids, mask = padded()
    calls = []
    native_stack = torch.ops.cove_quant.decode_stack

    def counting(*args):
        calls.append(len(args[4]))  # the layers
        return native_stack(*args)

    monkeypatch.setattr(torch.ops.cove_quant, "decode_stack", counting, raising=False)
    got, got_cache = decode(model, ids, mask, 5, native=True, monkeypatch=monkeypatch)
    assert calls == [model.config.num_hidden_layers] * 5  # one call a step
    ref, ref_cache = decode(model, ids, mask, 5, native=False, monkeypatch=monkeypatch)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    n = got_cache.length
    for layer in range(model.config.num_hidden_layers):
        for a, b in (
            (got_cache.keys[layer], ref_cache.keys[layer]),
            (got_cache.values[layer], ref_cache.values[layer]),
        ):
            assert a is not None and b is not None
            # the first layer's inputs are the same bits, so are its rotated keys; later layers read attention
            exact = 0 if layer == 0 else 1e-6
            torch.testing.assert_close(a[:, :, :n], b[:, :, :n], atol=exact, rtol=exact)


def test_batch_without_padding_and_generate_match(monkeypatch):
    model = tiny(num_key_value_heads=6)  # plain multi-head attention
    ids = torch.randint(3, 61, (2, 5), generator=torch.Generator().manual_seed(2))
    got = model.generate(ids, max_new_tokens=8, do_sample=False)
    monkeypatch.setattr(llama.LlamaModel, "_decode_step", lambda *args, **kwargs: None)
    ref = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert got.tolist() == ref.tolist()


def test_a_hook_gets_the_python_layers(monkeypatch):
    model = tiny()
    ids, mask = padded()
    seen = []
    handle = model.model.layers[1].mlp.down.register_forward_hook(lambda *args: seen.append(1))
    try:
        decode(model, ids, mask, 3, native=True, monkeypatch=monkeypatch)
    finally:
        handle.remove()
    assert len(seen) == 4  # the prefill and every step ran the hooked module


def test_the_native_attention_masks_and_writes_the_cache():
    heads, kv, d, cap, pos = 4, 2, 16, 8, 5
    torch.manual_seed(3)
    qkv = torch.randn(2, 1, (heads + 2 * kv) * d)
    cos, sin = torch.randn(2, d), torch.randn(2, d)
    kc, vc = torch.randn(2, kv, cap, d), torch.randn(2, kv, cap, d)
    keep = torch.ones(2, pos + 1, dtype=torch.bool)
    keep[1, :3] = False
    out = torch.ops.cove_quant.decode_attention(qkv, cos, sin, kc, vc, pos, keep, heads, kv, 0.25)
    x = qkv.view(2, heads + 2 * kv, d)
    q, k = x[:, :heads], x[:, heads : heads + kv]
    rope = lambda t: t * cos[:, None] + t.roll(d // 2, dims=-1) * sin[:, None]  # noqa: E731
    assert torch.equal(kc[:, :, pos], rope(k)) and torch.equal(vc[:, :, pos], x[:, heads + kv :])
    mask = torch.zeros(2, 1, 1, pos + 1).masked_fill(~keep[:, None, None], float("-inf"))
    ref = torch.nn.functional.scaled_dot_product_attention(
        rope(q)[:, :, None],
        kc[:, :, : pos + 1],
        vc[:, :, : pos + 1],
        attn_mask=mask,
        scale=0.25,
        enable_gqa=True,
    )
    torch.testing.assert_close(out.view(2, heads, d), ref[:, :, 0], atol=1e-6, rtol=1e-5)


def test_quantized_layers_take_the_native_step(monkeypatch):
    from cove.quant import quantize_model

    model = quantize_model(tiny(hidden_size=64, intermediate_size=64, num_attention_heads=4), "int4").eval()
    ids, mask = padded()
    calls = []
    native_stack = torch.ops.cove_quant.decode_stack

    def counting(*args):
        calls.extend(args[3])  # every projection's GGML type
        return native_stack(*args)

    monkeypatch.setattr(torch.ops.cove_quant, "decode_stack", counting, raising=False)
    got, _ = decode(model, ids, mask, 4, native=True, monkeypatch=monkeypatch)
    assert len(calls) == 4 * 4 * model.config.num_hidden_layers and all(t >= 0 for t in calls)
    ref, _ = decode(model, ids, mask, 4, native=False, monkeypatch=monkeypatch)
    # the products quantize their inputs to int8 blocks: attention's last bits can move a rounding step
    torch.testing.assert_close(got, ref, atol=2e-3, rtol=0)


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
def test_bf16_native_step_matches_the_python_layers(model_type, monkeypatch):
    model = tiny(model_type).to(torch.bfloat16)
    ids, mask = padded()
    calls = []
    native_stack = torch.ops.cove_quant.decode_stack

    def counting(*args):
        calls.append((args[0].dtype, len(args[4])))  # x's dtype, the layers
        return native_stack(*args)

    monkeypatch.setattr(torch.ops.cove_quant, "decode_stack", counting, raising=False)
    got, got_cache = decode(model, ids, mask, 5, native=True, monkeypatch=monkeypatch)
    assert calls == [(torch.bfloat16, model.config.num_hidden_layers)] * 5  # one call a step
    ref, ref_cache = decode(model, ids, mask, 5, native=False, monkeypatch=monkeypatch)
    assert got.dtype == ref.dtype == torch.bfloat16
    # attention sums its probabilities in float32 where SDPA rounds them to bf16 first: a bf16 step or two
    torch.testing.assert_close(got.float(), ref.float(), atol=4e-3, rtol=2**-6)
    n = got_cache.length
    for a, b in ((got_cache.keys[0], ref_cache.keys[0]), (got_cache.values[0], ref_cache.values[0])):
        assert a is not None and b is not None and a.dtype == torch.bfloat16
        # the first layer's keys and values: the same norm, product and RoPE roundings, so the same bits
        assert torch.equal(a[:, :, :n], b[:, :, :n])


def test_bf16_native_attention_rounds_rope_as_torch():
    heads, kv, d, cap, pos = 4, 2, 16, 8, 5
    torch.manual_seed(4)
    qkv = torch.randn(2, 1, (heads + 2 * kv) * d).bfloat16()
    cos, sin = torch.randn(2, d).bfloat16(), torch.randn(2, d).bfloat16()
    kc, vc = torch.randn(2, kv, cap, d).bfloat16(), torch.randn(2, kv, cap, d).bfloat16()
    keep = torch.ones(2, pos + 1, dtype=torch.bool)
    keep[0, :2] = False
    out = torch.ops.cove_quant.decode_attention(qkv, cos, sin, kc, vc, pos, keep, heads, kv, 0.25)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 1, heads * d)
    x = qkv.view(2, heads + 2 * kv, d)
    q, k = x[:, :heads], x[:, heads : heads + kv]
    rope = lambda t: t * cos[:, None] + t.roll(d // 2, dims=-1) * sin[:, None]  # noqa: E731  (bf16 ops)
    assert torch.equal(kc[:, :, pos], rope(k)) and torch.equal(vc[:, :, pos], x[:, heads + kv :])
    mask = torch.zeros(2, 1, 1, pos + 1).masked_fill(~keep[:, None, None], float("-inf"))
    ref = torch.nn.functional.scaled_dot_product_attention(
        rope(q).float()[:, :, None],
        kc[:, :, : pos + 1].float(),
        vc[:, :, : pos + 1].float(),
        attn_mask=mask,
        scale=0.25,
        enable_gqa=True,
    )
    # the float32 result rounded once
    torch.testing.assert_close(out.view(2, heads, d).float(), ref[:, :, 0], atol=1e-6, rtol=2**-8)


def test_bad_bf16_inputs_are_refused():
    heads, kv, d, cap = 2, 1, 8, 4
    qkv = torch.randn(1, 1, (heads + 2 * kv) * d).bfloat16()
    cos, sin = torch.ones(1, d).bfloat16(), torch.zeros(1, d).bfloat16()
    caches = torch.zeros(1, kv, cap, d).bfloat16(), torch.zeros(1, kv, cap, d).bfloat16()
    attend = torch.ops.cove_quant.decode_attention
    with pytest.raises(RuntimeError, match="cache must be a contiguous 4-D CPU tensor of qkv's dtype"):
        attend(qkv, cos, sin, caches[0].float(), caches[1], 0, None, heads, kv, 1.0)
    with pytest.raises(RuntimeError, match="cos and sin must have qkv's dtype"):
        attend(qkv, cos.float(), sin.float(), *caches, 0, None, heads, kv, 1.0)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        attend(qkv.half(), cos, sin, *caches, 0, None, heads, kv, 1.0)
    hidden, inter = 16, 8
    x = torch.randn(1, 1, hidden).bfloat16()
    norm = torch.ones(hidden).bfloat16()
    qkv_w = torch.randn((heads + 2 * kv) * d, hidden).bfloat16()
    o_w, gu_w, down_w = (
        torch.randn(hidden, heads * d).bfloat16(),
        torch.randn(2 * inter, hidden).bfloat16(),
        torch.randn(hidden, inter).bfloat16(),
    )

    def layer(x, norm, qkv_w, qkv_t=-1):
        return torch.ops.cove_quant.decode_layer(
            x, norm, qkv_w, None, qkv_t, o_w, None, -1, norm, gu_w, None, -1, down_w, None, -1,
            cos, sin, *caches, 0, None, heads, kv, 1.0, 1e-5,
        )  # fmt: skip

    assert layer(x, norm, qkv_w).dtype == torch.bfloat16
    with pytest.raises(RuntimeError, match="norm weights must have x's dtype"):
        layer(x, norm.float(), qkv_w)
    with pytest.raises(RuntimeError, match="weight and bias must have the layer's dtype"):
        layer(x, norm, qkv_w.float())
    with pytest.raises(RuntimeError, match="packed projections take float32 layers only"):
        layer(x, norm, qkv_w, 8)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        layer(x.half(), norm.half(), qkv_w.half())


def test_a_layer_of_another_dtype_has_no_native_plan():
    model = tiny().to(torch.bfloat16)
    layer = model.model.layers[1]
    with torch.inference_mode():
        assert layer.decode_weights(torch.bfloat16) is not None
        assert layer.decode_weights(torch.float32) is None  # bf16 weights: no float32 plan
        layer.mlp.down.float()  # one float32 projection in a bf16 layer: the Python layer runs
        assert layer.decode_weights(torch.bfloat16) is None


def test_the_one_call_step_is_the_per_layer_step(monkeypatch):
    """decode_stack over all the layers at once: the same bits as one call a layer (which a request for
    every layer's hidden states takes), and the same cache contents."""
    model = tiny(num_hidden_layers=3)
    ids, mask = padded()
    got, got_cache = decode(model, ids, mask, 4, native=True, monkeypatch=monkeypatch)
    hidden = []

    def per_layer(self, x, cos, sin, mask, start, cache, _hidden):
        return original(self, x, cos, sin, mask, start, cache, hidden)

    original = llama.LlamaModel._decode_step
    monkeypatch.setattr(llama.LlamaModel, "_decode_step", per_layer)
    ref, ref_cache = decode(model, ids, mask, 4, native=True, monkeypatch=monkeypatch)
    assert len(hidden) == 4 * 3
    assert torch.equal(got, ref)
    for a, b in zip(got_cache.keys + got_cache.values, ref_cache.keys + ref_cache.values, strict=True):
        assert a is not None and b is not None and torch.equal(a, b)


def test_the_one_call_step_checks_its_lists():
    x = torch.zeros(1, 1, 8)
    caches = [torch.zeros(1, 1, 4, 8)]
    with pytest.raises(RuntimeError, match="per layer, 6 tensors, 4 biases, 4 types"):
        torch.ops.cove_quant.decode_stack(
            x, [x] * 5, [None] * 4, [-1] * 4, caches, caches, x, x, 0, None, 1, 1, 1.0, 1e-5
        )
