"""Block formats against the `gguf` package: Cove's quantizers write the bytes gguf.quants.quantize writes,
and every dequantizer (torch and native) gives gguf.quants.dequantize's values exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cove.quant import kernels
from cove.quant.formats import FORMATS, as_q8_0, dequantize_torch, quantize, quantize_torch

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as gguf_dequantize  # noqa: E402
from gguf.quants import quantize as gguf_quantize  # noqa: E402

INTEGER = ["Q8_0", "Q4_0", "Q4_1"]
K_QUANTS = ["Q4_K", "Q5_K", "Q6_K"]
PACKED_ONLY = ["Q5_0", "Q5_1", *K_QUANTS]  # read, not written, by Cove (gguf cannot quantize the K-quants)


def weights(rows: int = 24, k: int = 256, seed: int = 0) -> torch.Tensor:
    w = torch.randn(rows, k, generator=torch.Generator().manual_seed(seed))
    w[0, :32] = 0.0  # an all-zero block: scale 0
    w[1, :32] = 3.0  # a constant block: max == min
    return w


def random_blocks(name: str, rows: int = 6, blocks: int | None = None, seed: int = 0) -> np.ndarray:
    """Random blocks of a PACKED_ONLY format (512 features unless ``blocks`` says) with finite, small fp16
    scales."""
    fmt = FORMATS[name]
    blocks = 512 // fmt.block_elems if blocks is None else blocks
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(rows, blocks, fmt.block_bytes), dtype=np.uint8)
    scales = rng.uniform(-0.05, 0.05, size=(rows, blocks, 2)).astype(np.float16).view(np.uint8)
    if name == "Q6_K":
        raw[..., 208:210] = scales[..., :2]
    elif name == "Q5_0":
        raw[..., 0:2] = scales[..., :2]
    else:  # d, dmin (Q5_1: d, m)
        raw[..., 0:4] = scales.reshape(rows, blocks, 4)
    return raw.reshape(rows, blocks * fmt.block_bytes)


@pytest.mark.parametrize("name", INTEGER)
def test_quantizers_write_the_bytes_gguf_writes(name):
    w = weights() * 0.03  # weight-sized values, where fp16 scales round
    theirs = gguf_quantize(w.numpy(), gguf.GGMLQuantizationType[name])
    np.testing.assert_array_equal(quantize_torch(w, name).numpy(), theirs)
    np.testing.assert_array_equal(quantize(w, name).numpy(), theirs)  # native when built


@pytest.mark.parametrize("name", INTEGER)
def test_dequantizers_match_gguf(name):
    packed = quantize(weights(), name)
    want = torch.from_numpy(
        gguf_dequantize(packed.numpy(), gguf.GGMLQuantizationType[name]).astype(np.float32)
    )
    fmt = FORMATS[name]
    torch.testing.assert_close(dequantize_torch(packed, fmt.ggml_type, 256), want, atol=0, rtol=0)
    rows = torch.arange(packed.shape[0])
    torch.testing.assert_close(kernels.dequant_rows(packed, rows, fmt.ggml_type, 256), want, atol=0, rtol=0)


@pytest.mark.parametrize("name", PACKED_ONLY)
def test_packed_only_rows_match_gguf(name):
    raw = random_blocks(name)
    want = torch.from_numpy(gguf_dequantize(raw, gguf.GGMLQuantizationType[name]).astype(np.float32))
    got = kernels.dequant_rows(torch.from_numpy(raw), torch.tensor([5, 0, 3]), FORMATS[name].ggml_type, 512)
    torch.testing.assert_close(got, want[[5, 0, 3]], atol=0, rtol=0)


@pytest.mark.parametrize("name", ["Q4_0", "Q5_0"])
def test_q4_0_and_q5_0_blocks_are_exactly_q8_0_blocks(name):
    fmt = FORMATS[name]
    raw = quantize(weights(), name) if name == "Q4_0" else torch.from_numpy(random_blocks(name, blocks=8))
    k = raw.shape[1] // fmt.block_bytes * 32
    wide = as_q8_0(raw, name, k)
    assert wide.shape == (raw.shape[0], FORMATS["Q8_0"].row_bytes(k))
    want = dequantize_torch(raw, fmt.ggml_type, k)
    torch.testing.assert_close(dequantize_torch(wide, FORMATS["Q8_0"].ggml_type, k), want, atol=0, rtol=0)
    with pytest.raises(ValueError, match="not exactly"):
        as_q8_0(raw, "Q4_1", k)


def test_row_lookup_is_bounds_checked():
    packed = quantize(weights(), "Q8_0")
    with pytest.raises((RuntimeError, IndexError), match="out of range"):
        kernels.dequant_rows(packed, torch.tensor([0, 24]), FORMATS["Q8_0"].ggml_type, 256)
