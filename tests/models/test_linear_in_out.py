"""modeling.linear_in_out: GPT-2's (in, out) weights through oneDNN at inference where chosen, addmm else."""

from __future__ import annotations

import pytest
import torch

from cove import hardware
from cove.models import modeling


@pytest.fixture
def gemm(monkeypatch):
    """Set COVE_GEMM for the test (the choice is cached per process)."""

    def choose(setting: str) -> None:
        monkeypatch.setenv(hardware.GEMM_ENV, setting)
        hardware.float32_gemm.cache_clear()

    yield choose
    hardware.float32_gemm.cache_clear()


@pytest.mark.parametrize("setting", ["onednn", "torch"])
@pytest.mark.parametrize("rows", [1, 7, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_addmm(gemm, setting, rows, bias):
    if setting == "onednn" and not hardware.onednn_linear_available():
        pytest.skip("this torch has no oneDNN linear")
    gemm(setting)
    generator = torch.Generator().manual_seed(rows)
    weight = torch.randn(48, 80, generator=generator)
    b = torch.randn(80, generator=generator) if bias else None
    x = torch.randn(2, rows, 48, generator=generator)
    with torch.no_grad():
        got = modeling.linear_in_out(x, weight, b)
    want = x.double() @ weight.double() + (b.double() if b is not None else 0)
    assert got.shape == (2, rows, 80) and got.dtype is torch.float32
    torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-5)


def test_autograd_and_other_dtypes_stay_on_torch(gemm):
    gemm("onednn")
    weight = torch.randn(16, 8, requires_grad=True)
    bias = torch.zeros(8, requires_grad=True)
    x = torch.randn(3, 16, requires_grad=True)
    modeling.linear_in_out(x, weight, bias).square().sum().backward()
    assert x.grad is not None and weight.grad is not None and bias.grad is not None
    with torch.no_grad():
        half = modeling.linear_in_out(x.double(), weight.double(), bias.double())
    assert half.dtype is torch.float64
    torch.testing.assert_close(half, torch.addmm(bias.double(), x.double(), weight.double()))
