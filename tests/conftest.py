from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# hubs under test build and run no spaces unless a test asks (tests/spaces' hubs pass spaces="on"): a space
# repo another test pushes must not start sandboxed builds in the background
os.environ.setdefault("COVE_SPACES", "off")
logging.getLogger("cove").setLevel(logging.ERROR)


# -- a fake CPU for cove.hardware: its /proc/cpuinfo and its measured bf16/fp32 matmul speed ratio -------

FAKE_CPUS = {  # name -> (model name, flags, bf16/fp32 speed ratio the fake measurement reports)
    "amx": (
        "Intel(R) Xeon(R) Platinum 8480+",
        "fpu sse sse2 fma avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8",
        8.0,
    ),
    "avx512_bf16": (
        "AMD EPYC 9454 48-Core Processor",
        "fpu sse sse2 fma avx2 avx512f avx512bw avx512_bf16",
        3.5,
    ),
    "avx2": ("AMD EPYC 7B12", "fpu sse sse2 fma avx2", 1 / 12),  # the machine: bf16 emulated
}


class FakeCpu:
    def __init__(self, tmp_path, monkeypatch):
        from cove import hardware

        self.hardware, self.tmp_path, self.monkeypatch = hardware, tmp_path, monkeypatch
        self.measured: list[str] = []  # one entry per (fake) micro-benchmark run
        monkeypatch.delenv("COVE_BF16", raising=False)
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        monkeypatch.delenv("COVE_GEMM", raising=False)
        self.gemm_ratio = 2.0  # what the (fake) oneDNN-vs-torch GEMM measurement returns

    def __call__(self, name: str, ratio: float | None = None) -> FakeCpu:
        model, flags, default = FAKE_CPUS[name]
        path = self.tmp_path / f"cpuinfo-{name}"
        block = f"processor\t: {{}}\nvendor_id\t: x\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
        path.write_text(block.format(0) + block.format(1))
        self.monkeypatch.setattr(self.hardware, "CPUINFO", str(path))

        def measure(kind: str = "cpu", **_: object) -> float:
            self.measured.append(kind)
            return default if ratio is None else ratio

        self.monkeypatch.setattr(self.hardware, "measure_matmul_ratio", measure)
        self.monkeypatch.setattr(self.hardware, "measure_gemm_ratio", lambda *a, **k: self.gemm_ratio)
        self.hardware._reset()
        return self


@pytest.fixture
def fake_cpu(tmp_path, monkeypatch):
    """``fake_cpu("avx2")`` makes cove.hardware see that CPU (caches and once-only warnings reset)."""
    fake = FakeCpu(tmp_path, monkeypatch)
    yield fake
    fake.hardware._reset()
