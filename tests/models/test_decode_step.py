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


def test_the_one_call_step_is_the_per_layer_step(monkeypatch):
    """decode_stack runs decode_layer for each layer: the same bits as the per-layer calls (which a request
    for every layer's hidden states takes), and the same cache contents."""
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
