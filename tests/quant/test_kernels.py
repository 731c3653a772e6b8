"""The packed-weight matmul against dequantize-then-float32-matmul on the same blocks.

For Q8_0 / Q4_0 / Q4_1 the kernel quantizes the activations to int8 blocks of 32 (llama.cpp's q8_0), so
its result differs from the float product by that rounding: measured at 0.5-0.6 % relative (Frobenius)
error on Gaussian data; the bound asserted is 1.5 %. The formats Cove only reads (Q5_0, Q5_1, Q4_K, Q5_K,
Q6_K) take the same int8 activation blocks against random packed blocks (AVX2 builds; without AVX2 they are
dequantized rows in float32): the same bound."""

from __future__ import annotations

import pytest
import torch

from cove.quant import kernels
from cove.quant.formats import FORMATS, dequantize_torch, quantize
from tests.quant.test_formats import PACKED_ONLY, random_blocks

SHAPES = [(1, 256, 96), (3, 256, 37), (8, 512, 64), (13, 96, 5)]  # (m, k, n): tails of every tiling


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0", "Q4_1"])
@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
def test_integer_kernels_match_the_float_product(name, m, k, n):
    g = torch.Generator().manual_seed(m * 1000 + n)
    packed = quantize(torch.randn(n, k, generator=g), name)
    x = torch.randn(m, k, generator=g)
    fmt = FORMATS[name]
    want = x @ dequantize_torch(packed, fmt.ggml_type, k).T
    got = kernels.qmatmul(x, packed, fmt.ggml_type, k)
    assert got.shape == (m, n)
    assert relative_error(got, want) < 0.015
    # the activation rounding is really there (the kernel is not a float matmul in disguise) ...
    if kernels.native_available():
        assert relative_error(got, want) > 1e-4
    # ... and each row of x is quantized on its own: a row computed alone gives the same result
    torch.testing.assert_close(kernels.qmatmul(x[-1:].contiguous(), packed, fmt.ggml_type, k), got[-1:])


@pytest.mark.parametrize("name", PACKED_ONLY)
@pytest.mark.parametrize("m", [1, 6])  # one activation row; a group of 4 and a tail of 2
def test_packed_only_kernels_match_the_float_product(name, m):
    raw = torch.from_numpy(random_blocks(name, rows=7, seed=m))
    fmt = FORMATS[name]
    x = torch.randn(m, 512, generator=torch.Generator().manual_seed(1))
    want = x @ dequantize_torch(raw, fmt.ggml_type, 512).T  # gguf.quants' dequantized values
    got = kernels.qmatmul(x, raw, fmt.ggml_type, 512)
    assert got.shape == (m, 7)
    assert relative_error(got, want) < 0.015
    if "avx" in kernels.backend():  # a build without AVX2 dequantizes these rows: float32 products
        assert relative_error(got, want) > 1e-4  # the blocks are read packed, against int8 activations
    torch.testing.assert_close(kernels.qmatmul(x[-1:].contiguous(), raw, fmt.ggml_type, 512), got[-1:])


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0", "Q4_1"])
@pytest.mark.parametrize("m", [1, 5, 9])
def test_every_tiling_gives_the_same_bits(name, m):
    """A weight row's result does not depend on the tile that computed it (8-row AVX-512 tiles, 4- and
    2-row tiles, single rows, 4 or 1 activation rows at a time): each one equals the row multiplied alone,
    bit for bit, so decoding gives the same tokens whichever branch the build has."""
    fmt = FORMATS[name]
    g = torch.Generator().manual_seed(m)
    packed = quantize(torch.randn(27, 256, generator=g), name)
    x = torch.randn(m, 256, generator=g)
    got = kernels.qmatmul(x, packed, fmt.ggml_type, 256)
    for j in (0, 7, 8, 19, 26):
        alone = kernels.qmatmul(x, packed[j : j + 1].contiguous(), fmt.ggml_type, 256)
        assert torch.equal(got[:, j : j + 1], alone)


def test_torch_fallback_computes_the_same_product(monkeypatch):
    packed = quantize(torch.randn(40, 128), "Q4_1")
    x = torch.randn(4, 128)
    monkeypatch.setattr(kernels, "_native", lambda: None)
    want = x @ dequantize_torch(packed, 3, 128).T
    torch.testing.assert_close(kernels.qmatmul(x, packed, 3, 128), want)
    assert kernels.backend().startswith("torch")


def test_sizes_are_checked_before_the_kernel_reads():
    if not kernels.native_available():
        pytest.skip("no native kernels on this machine")
    packed = quantize(torch.randn(8, 64), "Q8_0")
    with pytest.raises(RuntimeError, match="bytes"):
        kernels.qmatmul(torch.randn(2, 96), packed[:, :-1].contiguous(), 8, 64)
    with pytest.raises(RuntimeError, match="features"):
        kernels.qmatmul(torch.randn(2, 96), packed, 8, 64)
    with pytest.raises(RuntimeError, match="multiple"):
        kernels.qmatmul(torch.randn(2, 60), packed, 8, 60)
