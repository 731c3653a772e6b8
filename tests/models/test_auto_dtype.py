"""dtype="auto" (and the default) load a checkpoint in its own dtype, except bf16 where the CPU emulates it;
an explicit bf16 there still loads, with one warning. The CPU is faked (tests/conftest.py ``fake_cpu``)."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import cove
from cove.errors import ConfigError

transformers = pytest.importorskip("transformers")


@pytest.fixture
def bf16_bert(tmp_path):
    """A tiny random BERT saved by transformers in bfloat16 (config.json says so)."""
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).to(torch.bfloat16).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    return tmp_path


def dtypes(model) -> set[torch.dtype]:
    return {p.dtype for p in model.parameters()}


def hardware_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cove.hardware"]


@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
def test_auto_loads_fp32_where_bf16_is_emulated_and_says_so_once(bf16_bert, fake_cpu, caplog, keyword):
    fake_cpu("avx2")
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        first = cove.AutoModel.from_pretrained(bf16_bert, **{keyword: "auto"})
        second = cove.AutoModel.from_pretrained(bf16_bert, **{keyword: "auto"})
    assert dtypes(first) == dtypes(second) == {torch.float32}
    (message,) = hardware_warnings(caplog)
    assert f"dtype='auto': {bf16_bert} is stored in bfloat16" in message
    assert "bf16 matmuls run 12x slower than fp32 on this CPU (AMD EPYC 7B12, AVX2" in message


@pytest.mark.parametrize("cpu", ["amx", "avx512_bf16"])
def test_auto_keeps_bf16_where_it_is_native_and_faster(bf16_bert, fake_cpu, caplog, cpu):
    fake_cpu(cpu)
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        model = cove.AutoModel.from_pretrained(bf16_bert, dtype="auto")
    assert dtypes(model) == {torch.bfloat16}
    assert hardware_warnings(caplog) == []


def test_auto_on_native_flags_but_slow_bf16_loads_fp32(bf16_bert, fake_cpu):
    fake_cpu("avx512_bf16", ratio=0.5)
    assert dtypes(cove.AutoModel.from_pretrained(bf16_bert, dtype="auto")) == {torch.float32}


def test_default_dtype_is_auto_too(bf16_bert, fake_cpu, caplog):
    """No dtype keeps the stored dtype (transformers 5's default "auto"), so it gets the same rule."""
    fake_cpu("avx2")
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        assert dtypes(cove.AutoModel.from_pretrained(bf16_bert)) == {torch.float32}
    assert hardware_warnings(caplog)[0].startswith("the default dtype: ")
    fake_cpu("amx")
    assert dtypes(cove.AutoModel.from_pretrained(bf16_bert)) == {torch.bfloat16}


def test_explicit_bf16_on_emulated_cpu_loads_bf16_and_warns_once(bf16_bert, fake_cpu, caplog):
    fake_cpu("avx2")
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        for _ in range(2):
            model = cove.AutoModel.from_pretrained(bf16_bert, dtype="bfloat16")
            assert dtypes(model) == {torch.bfloat16}
        model = cove.AutoModel.from_pretrained(bf16_bert, dtype=torch.bfloat16)
    assert hardware_warnings(caplog) == [
        "dtype=bfloat16: bf16 matmuls run 12x slower than fp32 on this CPU (AMD EPYC 7B12, AVX2, no "
        "AVX512-BF16/AMX); float32 (or 'auto') is faster here."
    ]
    assert dtypes(cove.AutoModel.from_pretrained(bf16_bert, dtype="float32")) == {torch.float32}


@pytest.mark.parametrize("device", ["tpu", "cuda:first"])
def test_auto_on_an_unknown_device_names_it(bf16_bert, fake_cpu, device):
    fake_cpu("amx")
    with pytest.raises(ConfigError, match=rf"Unknown device '{device}'"):
        cove.AutoModel.from_pretrained(bf16_bert, dtype="auto", device=device)
    with pytest.raises(ConfigError, match=rf"Unknown device '{device}'"):
        cove.pipeline("feature-extraction", model=str(bf16_bert), dtype="auto", device=device)


@pytest.mark.parametrize("dtype", ["float64", "bf16", "int8", torch.float64])
def test_unknown_dtype_is_an_error(bf16_bert, dtype):
    with pytest.raises(ConfigError, match=r"is not supported; use .*float32.*bfloat16"):
        cove.AutoModel.from_pretrained(bf16_bert, dtype=dtype)
