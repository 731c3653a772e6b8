"""GGUF import on small files written at test time with the `gguf` package's writer, laid out as llama.cpp's
converter lays them out (Q/K rows permuted for RoPE), compared with the original model and with transformers'
own GGUF loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cove
from cove.checkpoint.gguf import GGUFFile, supported_types
from cove.errors import CheckpointError

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

VOCAB = 96
HF_TO_GGUF = {
    "model.embed_tokens": "token_embd",
    "model.norm": "output_norm",
    "lm_head": "output",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def tiny_llama(hidden: int = 64, intermediate: int = 128, tied: bool = False) -> transformers.PreTrainedModel:
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rope_theta=10000.0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    # convert_hf_to_gguf.py's LlamaModel.permute
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf_name: str) -> str:
    stem, _, param = hf_name.rpartition(".")
    if stem.startswith("model.layers."):
        _, _, index, rest = stem.split(".", 3)
        return f"blk.{index}.{HF_TO_GGUF[rest]}.{param}"
    return f"{HF_TO_GGUF[stem]}.{param}"


def write_gguf(path, model, qtype=None, raw_override=None):
    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_vocab_size(VOCAB)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([chr(ord("A") + i) for i in range(VOCAB - 1)] + ["AB"])
    w.add_token_types([1] * VOCAB)
    w.add_token_merges(["A B"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    for name, tensor in model.state_dict().items():
        if c.tie_word_embeddings and name == "lm_head.weight":
            continue  # llama.cpp writes no output.weight for a tied head
        array = tensor.numpy().astype(np.float32)
        if "q_proj" in name:
            array = llama_cpp_permute(array, c.num_attention_heads)
        elif "k_proj" in name:
            array = llama_cpp_permute(array, c.num_key_value_heads)
        target = gguf_name(name)
        if raw_override and target == raw_override[0]:
            qt = raw_override[1]
            block, size = gguf.GGML_QUANT_SIZES[qt]
            raw = np.zeros((array.shape[0], array.shape[1] // block * size), dtype=np.uint8)
            if len(raw_override) > 2:  # the blocks to store, as (rows, bytes per row)
                raw = raw_override[2]
            w.add_tensor(target, raw, raw_dtype=qt)
        elif qtype is not None and array.ndim == 2:
            w.add_tensor(target, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(target, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


IDS = torch.randint(3, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0))


def test_f32_gguf_loads_with_llama_cpp_permutation_undone(tmp_path):
    hf = tiny_llama()
    write_gguf(tmp_path / "m.gguf", hf)
    ours = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    assert type(ours).__name__ == "LlamaForCausalLM" and not ours.config.tie_word_embeddings
    with torch.no_grad():
        torch.testing.assert_close(ours(IDS).logits, hf(IDS).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1", "BF16"])
def test_quantized_gguf_matches_transformers_loader(tmp_path, qtype):
    hf = tiny_llama()
    write_gguf(tmp_path / "m.gguf", hf, qtype=gguf.GGMLQuantizationType[qtype])
    ours = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf").eval()
    with torch.no_grad():
        got, want, original = ours(IDS).logits, ref(IDS).logits, hf(IDS).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert not torch.equal(got, original) or qtype == "BF16"  # quantization really happened
    assert (
        ours.generate(IDS, max_new_tokens=8).tolist()
        == ref.generate(IDS, max_new_tokens=8, do_sample=False).tolist()
    )


def test_unsupported_tensor_type_is_named(tmp_path):
    hf = tiny_llama()
    # a Q8_1 tensor: a type the gguf package cannot dequantize
    write_gguf(tmp_path / "m.gguf", hf, raw_override=("blk.0.ffn_up.weight", gguf.GGMLQuantizationType.Q8_1))
    with pytest.raises(CheckpointError, match="Q8_1"):
        cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")


def test_required_quant_types_are_supported():
    assert {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"} <= supported_types()


def test_missing_and_non_gguf_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="absent.gguf")
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(CheckpointError, match=r"bad\.gguf"):
        GGUFFile(tmp_path / "bad.gguf")


def test_cli_convert_writes_an_hf_folder_transformers_loads(tmp_path):
    from cove.cli.main import main

    hf = tiny_llama()
    write_gguf(tmp_path / "m.gguf", hf)
    assert main(["convert", "gguf", str(tmp_path / "m.gguf"), str(tmp_path / "out")]) == 0
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ours = cove.AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    with torch.no_grad():
        torch.testing.assert_close(back(IDS).logits, hf(IDS).logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours(IDS).logits, hf(IDS).logits, atol=1e-5, rtol=0)
