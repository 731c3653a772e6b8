"""The small-M float32 linear (csrc/dense.cpp) against float64 products, and the hook the models call
(cove.models.modeling.linear): taken only with autograd off and few rows, the same bits on any thread
count. The AVX2 and plain C++ branches are built once each (COVE_KERNEL_ISA) in a subprocess and checked
there, with the packed-weight kernels of the same build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from cove import hardware
from cove.hardware import cpu_info
from cove.models import modeling
from cove.quant import kernels

native = pytest.mark.skipif(not kernels.native_available(), reason="no C++ compiler: no native kernels")

# (m, k, n): one row, odd sizes, the K tail of every vector width, the row and tile tails
SHAPES = [(1, 576, 960), (1, 7, 3), (2, 33, 5), (3, 577, 1537), (5, 1536, 576), (8, 64, 9), (13, 100, 17)]


def reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x.double(), w.double(), None if b is None else b.double()).float()


@native
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
def test_matches_the_float64_product(m, k, n, bias):
    g = torch.Generator().manual_seed(m * 7919 + k * 31 + n)
    x, w = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
    b = torch.randn(n, generator=g) if bias else None
    got = kernels.dense_linear(x, w, b)
    assert got.shape == (m, n) and got.dtype == torch.float32
    # float32 rounding over k terms, as torch's own product
    torch.testing.assert_close(got, reference(x, w, b), atol=2e-6 * k**0.5, rtol=1e-5)


@native
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
def test_bf16_weights_match_the_float64_product_and_torch(m, k, n, bias):
    g = torch.Generator().manual_seed(m * 7919 + k * 31 + n)
    x, w = torch.randn(m, k, generator=g).bfloat16(), torch.randn(n, k, generator=g).bfloat16()
    b = torch.randn(n, generator=g).bfloat16() if bias else None
    want = reference(x, w, b).double()  # the exact product of the bf16 values, to float32
    # float32 input, bfloat16 weight: float32 out, as exact as the float32 kernel
    got32 = kernels.dense_linear(x.float(), w, b)
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), want, atol=2e-6 * k**0.5, rtol=1e-5)
    # bfloat16 in and out: the float32 sum rounded once to bfloat16 (half an ulp: 2^-9 relative); where the
    # kernel multiplies bf16 pairs (VDPBF16PS) the float32 sum runs in another order, so a rounding can fall
    # the other way: at most one bf16 ulp from the widened sum rounded
    got = kernels.dense_linear(x, w, b)
    assert got.shape == (m, n) and got.dtype == torch.bfloat16
    if kernels.bf16_pairs():
        torch.testing.assert_close(got, got32.bfloat16(), atol=1e-5 * k**0.5, rtol=2**-7)
    else:
        torch.testing.assert_close(got, got32.bfloat16(), atol=0, rtol=0)
    torch.testing.assert_close(got.double(), want, atol=1e-5 * k**0.5, rtol=2**-8)
    # torch's own bf16 product rounds the same float32-accumulated sum: at most one bf16 ulp apart
    torch.testing.assert_close(got, F.linear(x, w, b), atol=1e-5 * k**0.5, rtol=2**-7)


@native
def test_strided_rows_and_non_contiguous_inputs():
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(19, 40, generator=g), torch.randn(19, generator=g)
    wide = torch.randn(4, 64, generator=g)
    for x in (wide[:, :40], wide[:, ::2][:, :32].repeat(1, 2)[:, :40], wide.T[:40].T):
        torch.testing.assert_close(kernels.dense_linear(x, w, b), reference(x, w, b), atol=1e-5, rtol=1e-5)


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_bits_on_any_thread_count_and_whatever_the_other_rows(dtype):
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(8, 576, generator=g).to(dtype), torch.randn(1539, 576, generator=g).to(dtype)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernels.dense_linear(x, w)
        torch.set_num_threads(max(2, saved))
        many = kernels.dense_linear(x, w)
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(one, many)
    for i in (0, 5, 7):  # a row alone, or in a group of 2 or 4, takes the same arithmetic
        assert torch.equal(kernels.dense_linear(x[i : i + 1], w), one[i : i + 1])
    assert torch.equal(kernels.dense_linear(x[:6], w), one[:6])


@native
def test_bad_arguments_are_refused():
    w = torch.randn(4, 8)
    with pytest.raises(RuntimeError, match="features"):
        kernels.dense_linear(torch.randn(2, 7), w)
    with pytest.raises(RuntimeError, match="contiguous 2-D float32 or bfloat16"):
        kernels.dense_linear(torch.randn(2, 8), w.double())
    with pytest.raises(RuntimeError, match="input must be a 2-D float32 or bfloat16"):
        kernels.dense_linear(torch.randn(2, 8).half(), w)
    with pytest.raises(RuntimeError, match="bias"):
        kernels.dense_linear(torch.randn(2, 8), w, torch.randn(3))


@pytest.fixture
def calls(monkeypatch):
    """How often the hook hands a product to the kernel."""
    seen: list[tuple[int, ...]] = []
    real = kernels.dense_linear

    def counting(x, w, b=None):
        seen.append(tuple(x.shape))
        return real(x, w, b)

    monkeypatch.setattr(kernels, "dense_linear", counting)
    return seen


@native
def test_hook_takes_few_rows_without_autograd(calls):
    lin = torch.nn.Linear(24, 10)
    x = torch.randn(2, 3, 24)
    with torch.no_grad():
        got = modeling.run_linear(lin, x)
    assert calls == [(6, 24)] and got.shape == (2, 3, 10)
    torch.testing.assert_close(got, lin(x).detach(), atol=1e-6, rtol=1e-5)
    with torch.inference_mode():
        modeling.linear(x[:, :1], lin.weight, lin.bias)
    assert calls[-1] == (2, 24)
    lin16 = lin.bfloat16()  # bf16 too, as many rows as the kernel is faster for: one rounding, as torch's
    x16 = torch.randn(1, kernels.dense_rows(torch.bfloat16), 24).bfloat16()
    with torch.no_grad():
        got16 = modeling.run_linear(lin16, x16)
        want16 = F.linear(x16, lin16.weight, lin16.bias)
    assert calls[-1] == (x16.shape[1], 24) and got16.dtype == torch.bfloat16
    torch.testing.assert_close(got16, want16, atol=1e-4, rtol=2**-7)


@native
def test_hook_leaves_autograd_large_batches_and_other_dtypes_to_torch(calls):
    lin = torch.nn.Linear(24, 10)
    x = torch.randn(1, 24, requires_grad=True)
    out = modeling.run_linear(lin, x)  # autograd on: torch, and the gradient flows
    out.sum().backward()
    assert x.grad is not None and lin.weight.grad is not None
    with torch.no_grad():
        modeling.linear(torch.randn(kernels.dense_rows() + 1, 24), lin.weight, lin.bias)
        modeling.linear(torch.randn(1, 24).double(), lin.weight.double())
        modeling.linear(torch.randn(1, 24).half(), lin.weight.half())
        rows16 = kernels.dense_rows(torch.bfloat16) + 1
        modeling.linear(torch.randn(rows16, 24).bfloat16(), lin.weight.bfloat16(), lin.bias.bfloat16())
        with pytest.raises(RuntimeError):  # mixed dtypes: torch's own error, not the kernel's mix
            modeling.linear(torch.randn(1, 24), lin.weight.bfloat16())
        with pytest.raises(RuntimeError):
            modeling.linear(torch.randn(1, 24).bfloat16(), lin.weight.bfloat16(), lin.bias)
        modeling.linear(torch.randn(1, 10), lin.weight.T)  # a transposed (non-contiguous) weight
        hooked = torch.nn.Linear(24, 10)
        hooked.register_forward_hook(lambda *a: None)
        modeling.run_linear(hooked, torch.randn(1, 24))
    assert calls == []


@pytest.mark.skipif(not hardware.onednn_linear_available(), reason="this torch has no oneDNN linear")
@pytest.mark.parametrize("bias", [True, False])
def test_hook_hands_many_rows_to_onednn_where_chosen(monkeypatch, calls, bias):
    lin = torch.nn.Linear(64, 48, bias=bias)
    x = torch.randn(3, kernels.dense_rows() + 5, 64)
    seen = []
    real = torch.ops.mkldnn._linear_pointwise

    class Ops:  # torch.ops.mkldnn with the linear counted
        def _linear_pointwise(self, *args):
            seen.append(tuple(args[0].shape))
            return real(*args)

    monkeypatch.setattr(torch.ops, "mkldnn", Ops())
    for setting, expected in (("onednn", [(3 * x.shape[1], 64)]), ("torch", [])):
        monkeypatch.setenv(hardware.GEMM_ENV, setting)
        hardware.float32_gemm.cache_clear()
        seen.clear()
        with torch.no_grad():
            got = modeling.run_linear(lin, x)
        assert seen == expected and got.shape == (3, x.shape[1], 48)
        torch.testing.assert_close(got, x @ lin.weight.T + (lin.bias if bias else 0), atol=1e-5, rtol=1e-5)
    hardware.float32_gemm.cache_clear()
    assert calls == []


def test_without_native_kernels_the_hook_is_f_linear(monkeypatch, calls):
    monkeypatch.setattr(kernels, "_dense_rows", lambda: 0)
    lin = torch.nn.Linear(8, 4)
    with torch.no_grad():
        torch.testing.assert_close(modeling.run_linear(lin, torch.randn(1, 8)).shape, torch.Size([1, 4]))
    assert calls == []


def test_an_unknown_isa_names_the_choices(monkeypatch):
    monkeypatch.setenv(kernels.ISA_ENV, "sse9")
    with pytest.raises(Exception, match="native, avx2, generic"):
        kernels.target()


# ---- the other branches, built on this machine --------------------------------------------------------

CHECK = textwrap.dedent(
    """
    import json, torch
    from cove.quant import kernels
    from cove.quant.formats import FORMATS, dequantize_torch, quantize
    out = {"isa": kernels.isa(), "dense": 0.0, "bf16": 0.0, "bf16 rounding": 0.0, "quant": 0.0}
    g = torch.Generator().manual_seed(0)
    for m, k, n in [(1, 576, 97), (3, 77, 5), (8, 1536, 33), (6, 50, 21)]:
        x, w, b = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g), torch.randn(n, generator=g)
        want = torch.nn.functional.linear(x.double(), w.double(), b.double())
        out["dense"] = max(out["dense"], float((kernels.dense_linear(x, w, b) - want).abs().max()))
        x16, w16, b16 = x.bfloat16(), w.bfloat16(), b.bfloat16()
        want = torch.nn.functional.linear(x16.double(), w16.double(), b16.double())
        got = kernels.dense_linear(x16.float(), w16, b16)
        out["bf16"] = max(out["bf16"], float((got - want).abs().max()))
        got16 = kernels.dense_linear(x16, w16, b16)  # the float32 sum, rounded once
        out["bf16 rounding"] = max(out["bf16 rounding"], float((got16.float() - got.bfloat16().float()).abs().max()))
    for name in ("Q8_0", "Q4_0", "Q4_1"):
        packed = quantize(torch.randn(37, 256, generator=g), name)
        x = torch.randn(5, 256, generator=g)
        want = x @ dequantize_torch(packed, FORMATS[name].ggml_type, 256).T
        got = kernels.qmatmul(x, packed, FORMATS[name].ggml_type, 256)
        out["quant"] = max(out["quant"], float((got - want).norm() / want.norm()))
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="session")
def other_builds():
    """{isa: the CHECK results} of each other branch, built once per machine into its own cache folder
    (~20 s each), checked in a subprocess (one process loads one build of the op library)."""
    results = {}
    for isa in ("avx2", "generic"):
        env = {**os.environ, kernels.ISA_ENV: isa, kernels.ENV: "native"}
        done = subprocess.run(
            [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        results[isa] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


@native
@pytest.mark.parametrize(
    ("isa", "names"), [("avx2", "quant avx2, dense avx2"), ("generic", "quant scalar, dense generic")]
)
def test_other_branches_compute_the_same_products(other_builds, isa, names):
    if isa == "avx2" and not {"avx2", "fma"} <= cpu_info().flags:
        pytest.skip("this CPU has no AVX2 + FMA")
    result = other_builds[isa]
    assert result["isa"] == names
    assert result["dense"] < 1e-4
    assert result["bf16"] < 1e-4 and result["bf16 rounding"] == 0.0
    assert result["quant"] < 0.015


@native
@pytest.mark.parametrize("shape", [(1, 1, 576), (8, 1, 576), (2, 7, 33), (3, 5)])
def test_rms_norm_matches_torch(shape):
    from cove.models.llama import RMSNorm

    g = torch.Generator().manual_seed(shape[-1])
    norm = RMSNorm(shape[-1], 1e-5)
    norm.weight.data = torch.randn(shape[-1], generator=g)
    x = torch.randn(*shape, generator=g)
    want = norm(x).detach()  # autograd on: torch's six ops
    with torch.no_grad():
        got = norm(x)
        native_out = kernels.rms_norm(x, norm.weight, 1e-5)
    assert native_out is not None and torch.equal(got, native_out)
    assert kernels.rms_norm(x, norm.weight, 1e-5) is None  # autograd on: the caller's torch ops run
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-6)


@native
def test_bf16_rows_follow_the_hardware(fake_cpu):
    fake_cpu("avx512_bf16")  # native bf16: torch's bf16 products win above one row, unless the kernel has
    # its own bf16 pairs (VDPBF16PS), which win at every row it takes
    pairs = kernels.bf16_pairs()
    assert kernels.dense_rows(torch.bfloat16) == (
        kernels.dense_rows() if pairs else min(kernels.DENSE_ROWS_BF16, kernels.dense_rows())
    )
    fake_cpu("avx2")  # emulated bf16: the kernel takes as many rows as in float32
    assert kernels.dense_rows(torch.bfloat16) == kernels.dense_rows() > kernels.DENSE_ROWS_BF16
