"""cove.hardware: bf16 native or emulated (by CPU flags, CUDA capability, COVE_BF16), its measured speed, and
the once-only warnings. The CPU is faked (tests/conftest.py ``fake_cpu``), so these run the same anywhere."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import time

import pytest
import torch

from cove import hardware
from cove.errors import ConfigError


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cove.hardware"]


@pytest.mark.parametrize(
    ("cpu", "native", "reason", "summary"),
    [
        ("amx", True, "amx_bf16", "Intel(R) Xeon(R) Platinum 8480+, AVX-512, AMX-BF16+AVX512-BF16"),
        ("avx512_bf16", True, "avx512_bf16", "AMD EPYC 9454 48-Core Processor, AVX-512, AVX512-BF16"),
        ("avx2", False, "no AVX512-BF16/AMX", "AMD EPYC 7B12, AVX2, no AVX512-BF16/AMX"),
    ],
)
def test_cpu_flags_decide_native(fake_cpu, cpu, native, reason, summary):
    fake_cpu(cpu)
    support = hardware.bf16_support()
    assert (support.device, support.native, support.reason) == ("cpu", native, reason)
    assert hardware.cpu_summary() == summary
    assert fake_cpu.measured == []  # detection alone never runs the micro-benchmark


def test_aarch64_bf16_feature_is_native(tmp_path, monkeypatch, fake_cpu):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve bf16 i8mm\n")
    monkeypatch.setattr(hardware, "CPUINFO", str(path))
    hardware._reset()
    assert hardware.bf16_support().native
    assert ", NEON, BF16" in hardware.cpu_summary()


def test_without_cpuinfo_torch_checks_the_flags(tmp_path, monkeypatch, fake_cpu):
    monkeypatch.setattr(hardware, "CPUINFO", str(tmp_path / "missing"))
    for name, value in [("_is_avx2_supported", True), ("_is_avx512_bf16_supported", True)]:
        monkeypatch.setattr(torch.cpu, name, lambda value=value: value, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_supported", lambda: False, raising=False)
    hardware._reset()
    assert hardware.cpu_info().flags == {"avx2", "avx512_bf16"}
    assert hardware.bf16_support() == hardware.Bf16Support("cpu", True, "avx512_bf16")


@pytest.mark.parametrize(
    ("cpu", "ratio", "expected"),
    [
        ("amx", None, True),
        ("avx512_bf16", None, True),
        ("avx512_bf16", 0.7, False),  # flags say native, but measured slower than fp32 (e.g. oneDNN capped)
        ("avx2", 5.0, False),  # emulated: never bf16 whatever a measurement says
    ],
)
def test_prefers_bf16_only_where_native_and_faster(fake_cpu, cpu, ratio, expected):
    fake_cpu(cpu, ratio)
    assert hardware.prefers_bf16() is expected
    assert fake_cpu.measured == ([] if cpu == "avx2" else ["cpu"])  # emulated needs no measurement


def test_measurement_runs_once_per_process(fake_cpu):
    fake_cpu("avx512_bf16")
    for _ in range(3):
        assert hardware.prefers_bf16("cpu")
        assert hardware.bf16_speedup() == 3.5
    assert fake_cpu.measured == ["cpu"]


def test_env_override(fake_cpu, monkeypatch):
    fake_cpu("avx2")
    monkeypatch.setenv("COVE_BF16", "native")
    assert hardware.bf16_support() == hardware.Bf16Support("cpu", True, "COVE_BF16=native")
    assert hardware.prefers_bf16()
    assert fake_cpu.measured == []  # taken at its word
    fake_cpu("amx")
    monkeypatch.setenv("COVE_BF16", "Emulated")
    assert not hardware.bf16_support().native and not hardware.prefers_bf16()
    monkeypatch.setenv("COVE_BF16", "auto")
    assert hardware.prefers_bf16()
    monkeypatch.setenv("COVE_BF16", "fast")
    with pytest.raises(ConfigError, match=r"COVE_BF16='fast'.*native"):
        hardware.bf16_support()


def test_cuda_capability_decides_on_gpu(fake_cpu, monkeypatch):
    fake_cpu("avx2")
    for capability, native in [((8, 6), True), ((9, 0), True), ((7, 5), False), (None, False)]:
        monkeypatch.setattr(hardware, "cuda_capability", lambda capability=capability: capability)
        hardware._reset()
        assert hardware.bf16_support("cuda:1").native is native
        assert hardware.prefers_bf16(0) is native  # an int device is a CUDA index
    assert fake_cpu.measured == []
    assert not hardware.prefers_bf16("cpu")  # the CPU is still the AVX2 one


@pytest.mark.parametrize(
    ("device", "kind"),
    [(None, "cpu"), ("cpu", "cpu"), ("CUDA:1", "cuda"), (0, "cuda"), (-1, "cpu"), ("mps", "mps")],
)
def test_device_type(device, kind):
    assert hardware.device_type(device) == kind
    assert hardware.device_type(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x", "", "meta", True])
def test_unknown_device_names_it(device):
    with pytest.raises(ConfigError, match=rf"Unknown device {device!r}.*cpu, cuda, mps"):
        hardware.device_type(device)
    with pytest.raises(ConfigError, match="Unknown device"):
        hardware.auto_dtype("bfloat16", device)


def test_explicit_bf16_on_emulated_cpu_warns_once_with_the_slowdown(fake_cpu, caplog):
    fake_cpu("avx2")
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        for _ in range(3):
            hardware.warn_if_bf16_is_slow("cpu")
    assert warnings_of(caplog) == [
        "dtype=bfloat16: bf16 matmuls run 12x slower than fp32 on this CPU (AMD EPYC 7B12, AVX2, no "
        "AVX512-BF16/AMX); float32 (or 'auto') is faster here."
    ]
    assert fake_cpu.measured == ["cpu"]  # measured once, for the message


def test_no_warning_where_bf16_is_native_and_fast(fake_cpu, caplog):
    fake_cpu("amx")
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        hardware.warn_if_bf16_is_slow("cpu")
        assert hardware.auto_dtype("bfloat16") == "bfloat16"
    assert warnings_of(caplog) == []


def test_auto_dtype_keeps_the_checkpoint_dtype_but_never_emulated_bf16(fake_cpu, caplog):
    fake_cpu("avx2")
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        assert hardware.auto_dtype("float16") == "float16"
        assert hardware.auto_dtype(None) == "float32"
        assert hardware.auto_dtype("torch.bfloat16", source="my/model") == "float32"
        assert hardware.auto_dtype("bfloat16", source="other/model") == "float32"
    (message,) = warnings_of(caplog)  # once per process
    assert message.startswith("dtype='auto': my/model is stored in bfloat16, but bf16 matmuls run 12x slower")
    assert "loading it in float32" in message and "COVE_BF16=native" in message


def test_describe_names_the_cpu_its_flags_and_the_measured_ratio(fake_cpu):
    fake_cpu("avx2")
    line = hardware.describe()
    assert line.startswith("CPU AMD EPYC 7B12, AVX2, no AVX512-BF16/AMX; ")
    assert f"torch {torch.__version__} capability {torch.backends.cpu.get_cpu_capability()}" in line
    assert "bf16 emulated on cpu (no AVX512-BF16/AMX), 256x256 matmul bf16/fp32 speed 0.08x" in line
    assert "auto picks fp32; float32 GEMM onednn (oneDNN 2.00x torch's at 32x512x2048)" in line
    fake_cpu("avx512_bf16")
    assert "speed" not in hardware.describe(measure=False) and fake_cpu.measured == ["cpu"]
    assert "bf16/fp32 speed 3.50x; auto picks bf16; float32 GEMM" in hardware.describe()


@pytest.mark.parametrize(("ratio", "choice"), [(2.4, "onednn"), (1.1, "torch"), (0.5, "torch")])
def test_float32_gemm_takes_onednn_only_where_clearly_faster(fake_cpu, ratio, choice):
    fake_cpu("avx512_bf16").gemm_ratio = ratio
    assert hardware.float32_gemm() == choice


@pytest.mark.parametrize("setting", ["onednn", "torch"])
def test_float32_gemm_setting_overrides_the_measurement(fake_cpu, monkeypatch, setting):
    fake_cpu("avx2").gemm_ratio = 0.0 if setting == "onednn" else 9.0
    monkeypatch.setenv(hardware.GEMM_ENV, setting)
    assert hardware.float32_gemm() == setting
    assert hardware.describe().endswith(f"float32 GEMM {setting}")


def test_a_bad_gemm_setting_names_the_choices(fake_cpu, monkeypatch):
    monkeypatch.setenv(hardware.GEMM_ENV, "blas")
    with pytest.raises(ConfigError, match=r"COVE_GEMM='blas'.*auto, onednn, torch"):
        hardware.float32_gemm()


def test_real_gemm_measurement_is_quick_and_finite():
    start = time.perf_counter()
    ratio = hardware.measure_gemm_ratio()
    assert math.isfinite(ratio) and ratio > 0 and time.perf_counter() - start < 5


def test_real_measurement_is_quick_and_leaves_threads_alone():
    threads = torch.get_num_threads()
    ratio = hardware.measure_matmul_ratio("cpu")
    assert math.isfinite(ratio) and ratio > 0
    assert torch.get_num_threads() == threads


def test_the_real_machine_is_described():
    hardware._reset()
    try:
        support = hardware.bf16_support()
        line = hardware.describe()
    finally:
        hardware._reset()
    assert hardware.cpu_info().model in line
    assert ("bf16 native" in line) is support.native


def test_importing_hardware_does_not_import_torch():
    code = "import sys, cove.hardware as h; h.cpu_info(); h.bf16_support(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
