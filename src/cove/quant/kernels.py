"""The C++ kernels (csrc/kernels.cpp: packed weights; csrc/dense.cpp: the small-M float32 linear): built at
first use, cached, and a pure-torch stand-in without them.

The sources are compiled with ``torch.utils.cpp_extension`` (g++ and ninja, ``-O3 -march=native``) into
``<cache root>/quant-kernels/<key>/``, where the key hashes the sources, torch's version, the target and the
CPU's model and flags: a machine with other vector units (AVX2 only, AVX-512 VNNI, ...) gets its own build,
and the compiler's ``-march=native`` picks the fastest branch there (``isa()`` says which). The build takes
20-60 s once; later processes load the cached library in milliseconds.

``COVE_KERNEL_ISA=native|avx2|generic`` (default native) builds for ``-march=native``, ``-march=haswell``
(AVX2 + FMA, no AVX-512) or ``-march=x86-64`` (SSE2 only, the plain C++ branches), each in its own cache
folder: how the other branches are tested on one machine.

``dense_linear(x, weight, bias)`` is ``x @ weight.T + bias`` for a few rows (decoding steps, the LM head),
float32 or bfloat16 weights (widened in registers, summed in float32): each weight row is streamed once, at
close to the read bandwidth, where torch's general GEMM reaches a fraction of it. ``dense_rows()`` is the
most rows it takes (``COVE_DENSE_ROWS``; 0 turns it off); ``cove.models.modeling.linear`` is the hook the
models call.

Without a compiler (or with ``COVE_QUANT_KERNELS=torch``) the same operations run in torch: the packed
weights are dequantized tile by tile and multiplied in float32. Correct, several times slower; a warning
says so once. ``COVE_QUANT_KERNELS=native`` makes a failed build an error instead.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import torch

from cove.errors import KernelBuildError

logger = logging.getLogger("cove.quant")

SOURCE = Path(__file__).with_name("csrc") / "kernels.cpp"
SOURCES = (
    SOURCE,
    SOURCE.with_name("dense.cpp"),
    SOURCE.with_name("decode.cpp"),
    SOURCE.with_name("hugepages.cpp"),
)
ENV = "COVE_QUANT_KERNELS"
ISA_ENV = "COVE_KERNEL_ISA"
# COVE_KERNEL_ISA -> the compiler's target
TARGETS = {"native": "-march=native", "avx2": "-march=haswell", "generic": "-march=x86-64"}
# -fopenmp: at::parallel_for is a header template that splits the range over torch's OpenMP threads only
# where the including file is compiled with OpenMP (_OPENMP); without it every kernel ran on one thread.
# -ffp-contract=off: no fused multiply-adds the source does not spell (the quantizers round as ggml's do).
CFLAGS = ("-O3", "-fno-math-errno", "-ffp-contract=off", "-fopenmp")
LDFLAGS = ("-fopenmp",)  # libgomp.so.1: at run time the one torch has loaded, so one thread pool
DENSE_ROWS_ENV = "COVE_DENSE_ROWS"
DENSE_ROWS = 8  # measured crossover against torch (MKL) on a 2-core AVX-512 EPYC: faster up to 8 rows
# bfloat16 weights: the kernel widens them and multiplies in float32, torch (oneDNN) multiplies bf16 pairs
# natively where the CPU has AVX512-BF16. On the 2-core AVX-512 EPYC the kernel was faster at 1 row only
# (17-25 against 12-24 GB/s of bf16 weights at 1 row; 23 against 28 at 2, 21-23 against 25-27 at 4, 12
# against 19 at 8).
DENSE_ROWS_BF16 = 1
# ... unless the kernel multiplies bf16 pairs itself (VDPBF16PS, built where the compiler targets AVX512-BF16):
# then it takes as many rows as in float32. Measured on the same EPYC with SmolLM2-135M's LM head (49152 x
# 576): 1.3-2.2 ms against oneDNN's 1.9-6.0 at 1-8 rows, and whole bf16 decoding steps of 8 rows 14.5 ms
# against 19.5 with the widening kernel.
_lock = threading.Lock()


def _cache_root() -> Path:
    return Path(os.environ.get("COVE_CACHE") or Path.home() / ".cache" / "cove").expanduser()


def target() -> str:
    """``COVE_KERNEL_ISA``: "native" (default), "avx2" or "generic"."""
    value = os.environ.get(ISA_ENV, "native").strip().lower() or "native"
    if value not in TARGETS:
        raise KernelBuildError(f"{ISA_ENV}={value!r} is not understood; use one of {', '.join(TARGETS)}.")
    return value


def build_key() -> str:
    from cove.hardware import cpu_info

    info = cpu_info()
    sources = [path.read_text(encoding="utf-8") for path in SOURCES]
    text = "|".join(
        [*sources, torch.__version__, TARGETS[target()], *CFLAGS, *LDFLAGS, info.model, *sorted(info.flags)]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _native() -> Any:
    """torch.ops.cove_quant after loading (building if needed) the library, or None with a warning."""
    mode = os.environ.get(ENV, "auto").strip().lower()
    if mode == "torch":
        return None
    try:
        with _lock:
            return _build()
    except Exception as exc:  # the compiler's and ninja's failures come in many types
        if mode == "native":
            raise KernelBuildError(f"Building Cove's quantized kernels failed: {exc}") from exc
        logger.warning(
            "Cove's quantized matmul kernels could not be built (%s); quantized models run on a slower "
            "pure-torch path. Install g++ and ninja (scripts/setup.sh does) to get the fast kernels.",
            str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__,
        )
        return None


def _build() -> Any:
    from torch.utils import cpp_extension

    folder = _cache_root() / "quant-kernels" / build_key()
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / "cove_quant.so"
    if not library.is_file():
        logger.warning("Building Cove's quantized matmul kernels (once per machine, 20-60 s) in %s", folder)
        cpp_extension.load(
            name="cove_quant",
            sources=[str(path) for path in SOURCES],
            extra_cflags=[*CFLAGS, TARGETS[target()]],
            extra_ldflags=list(LDFLAGS),
            build_directory=str(folder),
            is_python_module=False,
            verbose=False,
        )
    else:
        torch.ops.load_library(str(library))
    return torch.ops.cove_quant


def native_available() -> bool:
    return _native() is not None


def init_threads() -> None:
    """Set up the calling thread's intra-op thread count in the native library as torch has it now (its
    kernels' first parallel region in a thread would otherwise do it then, undoing a count set for that
    thread alone since); nothing without native kernels."""
    ops = _native()
    if ops is not None:
        ops.init_threads()


def backend() -> str:
    """Which path runs: "native (avx2+avx512vnni)", "native (avx2)", ... or "torch (no native kernels)"."""
    ops = _native()
    return f"native ({ops.isa()})" if ops is not None else "torch (no native kernels)"


def isa() -> str:
    """The branches the built library runs, "quant avx2+avx512vnni, dense avx512" (or "torch")."""
    ops = _native()
    return f"quant {ops.isa()}, dense {ops.dense_isa()}" if ops is not None else "torch"


@functools.cache
def _dense_rows() -> int:
    raw = os.environ.get(DENSE_ROWS_ENV, str(DENSE_ROWS))
    try:
        rows = int(raw)
    except ValueError:
        raise KernelBuildError(f"{DENSE_ROWS_ENV}={raw!r} is not an integer.") from None
    return rows if rows > 0 and _native() is not None else 0


def dense_rows(dtype: torch.dtype = torch.float32) -> int:
    """The most rows ``dense_linear`` is faster for with this dtype (0: no native kernels, or
    ``COVE_DENSE_ROWS=0``; bfloat16: at most ``DENSE_ROWS_BF16`` where the CPU computes bf16 natively, as
    many as float32 where torch emulates it and its bf16 products are many times slower, or where the kernel
    multiplies bf16 pairs natively, ``bf16_pairs()``)."""
    rows = _dense_rows()
    if dtype is torch.bfloat16 and rows and not bf16_pairs():
        from cove.hardware import bf16_support

        if bf16_support("cpu").native:
            return min(rows, DENSE_ROWS_BF16)
    return rows


def bf16_pairs() -> bool:
    """Whether the built kernel multiplies bfloat16 inputs by bfloat16 weights as bf16 pairs (VDPBF16PS,
    float32 sums) rather than widening both to float32 first."""
    ops = _native()
    return ops is not None and bool(ops.dense_bf16_pairs())


def dense_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (m, k) @ weight (n, k).T + bias -> (m, n) in x's dtype, by the native kernel (torch without it).

    x, weight and bias are float32 or bfloat16, in any mix: bfloat16 is widened to float32 (exactly), every
    output is one fixed-order float32 reduction over k, rounded to bfloat16 at the end when x is bfloat16.
    The same bits on any thread count and whatever other rows x holds. Not differentiable: callers use it
    with autograd off."""
    ops = _native()
    if ops is None:
        w = weight if weight.dtype is x.dtype else weight.to(x.dtype)
        return torch.nn.functional.linear(x, w, None if bias is None else bias.to(x.dtype))
    return ops.dense_linear(x, weight, bias)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor | None:
    """weight * x / sqrt(mean(x ** 2, -1) + eps) in one native op (the same sum of squares in a fixed order),
    or None where it does not apply: autograd on, not float32 on the CPU, no native kernels."""
    if (
        x.dtype is not torch.float32
        or weight.dtype is not torch.float32
        or torch.is_grad_enabled()
        or x.device.type != "cpu"
    ):
        return None
    ops = _native()
    if ops is None or dense_rows() == 0:
        return None
    return ops.rms_norm(x, weight, eps)


def qmatmul(x: torch.Tensor, packed: torch.Tensor, qtype: int, in_features: int) -> torch.Tensor:
    """x (m, k) float32 @ packed (n, ...) blocks, transposed -> (m, n) float32."""
    ops = _native()
    if ops is not None:
        return ops.qmatmul(x, packed, qtype, in_features)
    from cove.quant.formats import dequantize_torch

    out = x.new_empty(x.shape[0], packed.shape[0])
    tile = max(1, (1 << 22) // max(1, in_features))  # ~16 MB of float32 weights at a time
    for start in range(0, packed.shape[0], tile):
        weight = dequantize_torch(packed[start : start + tile], qtype, in_features)
        out[:, start : start + tile] = x @ weight.T
    return out


def quantize(weight: torch.Tensor, qtype: int) -> torch.Tensor:
    """float (rows, k) -> packed (rows, row_bytes) in Q8_0 / Q4_0 / Q4_1 (formats.quantize_torch's bytes)."""
    ops = _native()
    if ops is not None:
        return ops.quantize(weight.detach().to(torch.float32).contiguous(), qtype)
    from cove.quant.formats import BY_TYPE, quantize_torch

    return quantize_torch(weight, BY_TYPE[qtype].name)


def dequant_rows(packed: torch.Tensor, index: torch.Tensor, qtype: int, in_features: int) -> torch.Tensor:
    """Rows ``index`` of a packed matrix as float32 (len(index), k)."""
    ops = _native()
    if ops is not None:
        return ops.dequant_rows(packed, index, qtype, in_features)
    from cove.quant.formats import dequantize_torch

    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= packed.shape[0]):
        raise IndexError(f"row index out of range for {packed.shape[0]} rows")
    return dequantize_torch(packed[index], qtype, in_features)
