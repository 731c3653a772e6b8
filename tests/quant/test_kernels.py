"""The packed-weight matmul against dequantize-then-float32-matmul on the same blocks.

For Q8_0 / Q4_0 / Q4_1 the kernel quantizes the activations to int8 blocks of 32 (llama.cpp's q8_0), so
its result differs from the float product by that rounding: measured at 0.5-0.6 % relative (Frobenius)
error on Gaussian data; the bound asserted is 1.5 %. The formats Cove only reads (Q5_0, Q5_1, Q4_K, Q5_K,
Q6_K) take the same int8 activation blocks against random packed blocks (AVX2 builds; without AVX2 they are
dequantized rows in float32): the same bound."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from cove.hardware import cpu_info
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


def some_blocks(name: str, rows: int, k: int, seed: int) -> torch.Tensor:
    if name in ("Q8_0", "Q4_0", "Q4_1"):
        return quantize(torch.randn(rows, k, generator=torch.Generator().manual_seed(seed)), name)
    return torch.from_numpy(random_blocks(name, rows=rows, blocks=k // FORMATS[name].block_elems, seed=seed))


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0", "Q4_1", *PACKED_ONLY])
@pytest.mark.parametrize("m", [1, 5, 9])
def test_every_tiling_gives_the_same_bits(name, m):
    """A weight row's result does not depend on the tile that computed it (8-row AVX-512 tiles, 4- and
    2-row tiles, single rows, 4 or 1 activation rows at a time): each one equals the row multiplied alone,
    bit for bit, so decoding gives the same tokens whichever branch the build has."""
    fmt = FORMATS[name]
    packed = some_blocks(name, 27, 512, seed=m)
    x = torch.randn(m, 512, generator=torch.Generator().manual_seed(m))
    got = kernels.qmatmul(x, packed, fmt.ggml_type, 512)
    for j in (0, 7, 8, 19, 26):
        alone = kernels.qmatmul(x, packed[j : j + 1].contiguous(), fmt.ggml_type, 512)
        assert torch.equal(got[:, j : j + 1], alone)
    for i in (0, m - 1):  # and an activation row multiplied alone
        assert torch.equal(
            kernels.qmatmul(x[i : i + 1].contiguous(), packed, fmt.ggml_type, 512), got[i : i + 1]
        )


CROSS_BUILD = textwrap.dedent(
    """
    import sys, torch
    from cove.quant import kernels
    from tests.quant.test_kernels import cases
    torch.save({key: kernels.qmatmul(x, w, t, k) for key, (x, w, t, k) in cases().items()}, sys.argv[1])
    print(kernels.isa())
    """
)


def cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, int, int]]:
    """(x, packed, type, k) for every type with a kernel, at shapes that take every tile and tail."""
    out = {}
    for name in ("Q8_0", "Q4_0", "Q4_1", *PACKED_ONLY):
        for n, k in ((37, 512), (64, 1536)):
            for m in (1, 6):
                x = torch.randn(m, k, generator=torch.Generator().manual_seed(n + m))
                out[f"{name} {n}x{k} m={m}"] = (
                    x,
                    some_blocks(name, n, k, seed=n),
                    FORMATS[name].ggml_type,
                    k,
                )
    return out


@pytest.mark.skipif(not {"avx2", "fma"} <= cpu_info().flags, reason="this CPU has no AVX2 + FMA")
def test_the_avx2_build_gives_this_builds_bits(tmp_path):
    """The AVX2 build (COVE_KERNEL_ISA=avx2, its own cache folder, built once per machine) and this one
    compute every type with the same operations per (row, activation) pair: the same bits, so an AVX2-only
    machine decodes the tokens this one does."""
    if not kernels.native_available():
        pytest.skip("no native kernels on this machine")
    env = {**os.environ, kernels.ISA_ENV: "avx2", kernels.ENV: "native"}
    done = subprocess.run(
        [sys.executable, "-c", CROSS_BUILD, str(tmp_path / "avx2.pt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "quant avx2," in done.stdout
    theirs = torch.load(tmp_path / "avx2.pt")
    for key, (x, w, t, k) in cases().items():
        assert torch.equal(kernels.qmatmul(x, w, t, k), theirs[key]), key


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
