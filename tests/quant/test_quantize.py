"""quantization="int8" | "int4" on a float checkpoint (a tiny random Llama written by transformers), and
what a quantized model refuses to do, saying what to do instead."""

from __future__ import annotations

import logging

import pytest
import torch

import cove
from cove.errors import QuantizationError
from cove.quant import QuantLinear, dequantize_model, describe
from tests.checkpoint.test_gguf import IDS, VOCAB, tiny_llama

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    hf = tiny_llama(tied=True)
    hf.save_pretrained(folder)
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {chr(ord("A") + i): i for i in range(VOCAB)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="A"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    with torch.no_grad():
        logits = hf(IDS).logits
    return folder, logits


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


@pytest.mark.parametrize(("scheme", "fmt", "bound"), [("int8", "Q8_0", 0.02), ("int4", "Q4_1", 0.25)])
def test_quantized_logits_stay_close_to_float(checkpoint, scheme, fmt, bound):
    folder, want = checkpoint
    model = cove.AutoModelForCausalLM.from_pretrained(folder, quantization=scheme)
    # 2 layers x 7 linears in the scheme's format; the tied embedding and head share one Q8_0 table
    assert describe(model) == ("16 x Q8_0" if fmt == "Q8_0" else f"14 x {fmt}, 2 x Q8_0")
    with torch.inference_mode():
        got = model(IDS).logits
    error = relative_error(got, want)
    assert 1e-4 < error < bound  # quantized for real, and close
    out = model.generate(IDS, max_new_tokens=4)
    assert out.shape == (2, IDS.shape[1] + 4)


def test_layers_that_do_not_fit_the_group_size_stay_float(tmp_path, caplog):
    hf = tiny_llama(
        hidden=48, intermediate=128
    )  # 48 is not a multiple of 32: q/k/v, gate/up, head stay float
    hf.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="cove.quant"):
        model = cove.AutoModelForCausalLM.from_pretrained(tmp_path, quantization="int4")
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "model.layers.0.attn.q (in_features=48)" in message and "stay float" in message
    assert isinstance(model.model.layers[0].mlp.down, QuantLinear)  # in_features 128 fits
    assert type(model.model.layers[0].attn.q) is torch.nn.Linear
    with torch.inference_mode(), torch.no_grad():
        got, want = model(IDS).logits, hf(IDS).logits
    assert relative_error(got, want) < 0.25


def test_unsupported_quantization_names_the_supported_ones(checkpoint):
    with pytest.raises(
        QuantizationError, match="quantization='nf4' is not supported; use one of 'int8', 'int4', 'gguf'"
    ):
        cove.AutoModelForCausalLM.from_pretrained(checkpoint[0], quantization="nf4")
    from cove.quant import quantize_model

    with pytest.raises(QuantizationError, match=r"\['int4', 'int8'\], not 'gguf'"):
        quantize_model(cove.AutoModelForCausalLM.from_pretrained(checkpoint[0]), "gguf")


def test_a_quantized_model_refuses_to_train_and_to_save(checkpoint, tmp_path):
    model = cove.AutoModelForCausalLM.from_pretrained(checkpoint[0], quantization="int8")
    model.train()
    with pytest.raises(QuantizationError, match="without quantization="):
        model(IDS)
    with pytest.raises(QuantizationError, match="dequantize_model"):
        model.save_pretrained(tmp_path / "out")
    # the way out both messages name: float weights again, trainable and savable
    model = dequantize_model(model.eval())
    assert describe(model) == "no quantized layers"
    assert model.lm_head.weight is model.model.embed.weight
    model.save_pretrained(tmp_path / "out")
    again = cove.AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    with torch.inference_mode():
        torch.testing.assert_close(again(IDS).logits, model(IDS).logits)


def test_the_pipeline_and_cove_run_take_quantization(checkpoint, capsys):
    folder, _ = checkpoint
    pipe = cove.pipeline("text-generation", model=str(folder), quantization="int4")
    assert isinstance(pipe.model.model.layers[0].mlp.down, QuantLinear)
    result = pipe("B C", max_new_tokens=3, do_sample=False)
    assert isinstance(result[0]["generated_text"], str)
    with pytest.raises(QuantizationError, match="not supported"):
        cove.pipeline("text-generation", model=str(folder), quantization="fp8")

    from cove.cli.main import main

    assert (
        main(
            [
                "run",
                "text-generation",
                "B C",
                "--model",
                str(folder),
                "--quantization",
                "int8",
                "--param",
                "max_new_tokens=3",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip()


def test_the_server_setting_keeps_gguf_blocks_for_gguf_repos_only(tmp_path):
    from cove.server.inference.engine import _quantization_for

    assert _quantization_for("gguf", tmp_path) is None  # a float repo loads in float
    (tmp_path / "m.gguf").write_bytes(b"")
    assert _quantization_for("gguf", tmp_path) == "gguf"
    assert _quantization_for("int8", tmp_path) == "int8"


def test_the_server_counts_a_quantized_model_by_its_packed_bytes(checkpoint):
    """The inference server's model cache budgets by _memory_of: the packed blocks (buffers) count, once
    for the tied embedding/head and once for the fused q/k/v rows their members view."""
    from cove.server.inference.engine import _memory_of

    dense = cove.AutoModelForCausalLM.from_pretrained(checkpoint[0])
    model = cove.AutoModelForCausalLM.from_pretrained(checkpoint[0], quantization="int8")
    packed = {id(m.packed): m.packed for m in model.modules() if hasattr(m, "packed")}
    floats = sum(p.numel() * p.element_size() for p in model.parameters())
    floats += sum(b.numel() * b.element_size() for b in model.buffers() if b.is_floating_point())  # RoPE
    want = sum(t.numel() for t in packed.values()) + floats
    assert _memory_of(model) == want
    # Q8_0 is 34 bytes per 32 weights: about a quarter of float32
    assert 0.2 * _memory_of(dense) < _memory_of(model) < 0.4 * _memory_of(dense)
