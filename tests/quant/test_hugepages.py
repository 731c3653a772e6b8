"""Weights moved onto a huge-page arena (csrc/hugepages.cpp): the same values and the same products bit for
bit, every view and tied parameter following its storage, nothing moved twice, the arena freed with its
last storage, and what must not move (lazily cloned storages, disabled, not tensors) left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cove.quant import hugepages, kernels
from tests.models.test_decode_step import tiny

pytestmark = pytest.mark.skipif(not kernels.native_available(), reason="no C++ compiler: no native kernels")


def arena_bytes() -> int:
    return int(torch.ops.cove_quant.hugepage_arena_bytes())


def test_values_views_and_products_stay_the_same():
    g = torch.Generator().manual_seed(0)
    fused = torch.randn(960, 576, generator=g)
    q, kv = fused[:576], fused[576:]  # views, as FusedLinears' parameters of the fused weight
    o = torch.randn(576, 576, generator=g)
    bias = torch.randn(960, generator=g)
    odd = torch.randint(0, 255, (3, 37), dtype=torch.uint8, generator=g)  # packed blocks: any dtype
    x = torch.randn(1, 576, generator=g)
    before = [t.clone() for t in (fused, o, bias, odd)]
    products = [kernels.dense_linear(x, fused, bias), kernels.dense_linear(x, o)]
    start = arena_bytes()
    moved = hugepages.pack([fused, q, kv, None, o, bias, odd, "not a tensor", o])  # type: ignore[list-item]
    assert moved == sum((t.numel() * t.element_size() + 63) // 64 * 64 for t in (fused, o, bias, odd))
    assert arena_bytes() - start >= moved and (arena_bytes() - start) % (2 << 20) == 0
    assert all(hugepages.packed(t) for t in (fused, q, kv, o, bias, odd))
    assert q.data_ptr() == fused.data_ptr() and kv.data_ptr() == fused.data_ptr() + 576 * 576 * 4
    for got, want in zip((fused, o, bias, odd), before):
        assert torch.equal(got, want)
    assert torch.equal(kernels.dense_linear(x, fused, bias), products[0])
    assert torch.equal(kernels.dense_linear(x, o), products[1])
    fused[0, 0] = 5.0  # still one storage: the views see writes
    assert q[0, 0] == 5.0
    assert hugepages.pack([fused, o]) == 0  # already moved: nothing to do


def test_the_arena_goes_with_its_last_storage():
    start = arena_bytes()
    a, b = torch.ones(1000), torch.ones(3 << 20)
    assert hugepages.pack([a, b]) > 0
    assert arena_bytes() - start == 14 << 20  # 4 KB + 12 MB, in 2 MB pages
    del a
    assert arena_bytes() - start == 14 << 20
    del b
    assert arena_bytes() == start


def test_lent_memory_is_copied_and_no_longer_shared():
    array = np.arange(12, dtype=np.float32)
    t = torch.from_numpy(array)
    assert hugepages.pack([t]) > 0
    array[0] = 99.0
    assert t[0] == 0.0 and torch.equal(t, torch.arange(12, dtype=torch.float32))


def test_what_is_left_alone(monkeypatch):
    lazy = torch.ones(100)._lazy_clone()  # copy-on-write: shares memory with its source until written
    empty = torch.empty(0)
    shared = torch.ones(100).share_memory_()  # shared with other processes on purpose
    assert hugepages.pack([lazy, empty, shared]) == 0
    assert not any(hugepages.packed(t) for t in (lazy, empty, shared))
    assert hugepages.pack([]) == 0
    monkeypatch.setenv(hugepages.ENV, "0")
    assert not hugepages.enabled()
    t = torch.ones(10)
    assert hugepages.pack([t]) == 0 and not hugepages.packed(t)
    with pytest.raises(RuntimeError):
        torch.ops.cove_quant.hugepage_pack([torch.ones(2), 3])


def tiny_llama() -> torch.nn.Module:
    return tiny("llama", tie_word_embeddings=True)


def test_a_packed_model_generates_the_same_tokens(monkeypatch):
    ids = torch.randint(3, 61, (2, 5), generator=torch.Generator().manual_seed(1))
    plain, moved = tiny_llama(), tiny_llama()
    with torch.inference_mode():
        with monkeypatch.context() as patch:
            patch.setenv(hugepages.ENV, "0")  # whatever the model's own decoding path would move
            want = plain.generate(ids, max_new_tokens=6, do_sample=False)
            logits = plain(ids).logits
        assert not any(hugepages.packed(p) for p in plain.parameters())
        assert hugepages.pack(list(moved.parameters())) > 0
        assert all(hugepages.packed(p) for p in moved.parameters())
        assert moved.lm_head.weight.data_ptr() == moved.model.embed.weight.data_ptr()  # still tied
        assert torch.equal(moved.generate(ids, max_new_tokens=6, do_sample=False), want)
        assert torch.equal(moved(ids).logits, logits)


def test_pack_model_moves_the_fused_weights_the_step_reads(monkeypatch):
    ids = torch.randint(3, 61, (2, 5), generator=torch.Generator().manual_seed(2))
    plain, moved = tiny_llama(), tiny_llama()
    monkeypatch.setenv(hugepages.ENV, "0")
    assert hugepages.pack_model(moved) == 0  # disabled: nothing moves
    with torch.inference_mode():
        want = plain.generate(ids, max_new_tokens=6, do_sample=False)
    monkeypatch.delenv(hugepages.ENV)
    assert hugepages.pack_model(moved) > 0
    attn, mlp = moved.model.layers[0].attn, moved.model.layers[0].mlp
    with torch.no_grad():
        qkv, gate_up = attn.qkv.fused(), mlp.gate_up.fused()
    assert qkv is not None and gate_up is not None
    assert hugepages.packed(qkv[0]) and hugepages.packed(gate_up[0])
    assert attn.qkv.linears[0].weight.data_ptr() == qkv[0].data_ptr()  # the parameters still view it
    assert all(hugepages.packed(p) for p in moved.parameters())
    assert hugepages.pack_model(moved) == 0  # once is enough
    with torch.inference_mode():
        assert torch.equal(moved.generate(ids, max_new_tokens=6, do_sample=False), want)
