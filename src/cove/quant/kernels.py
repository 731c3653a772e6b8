"""The C++ kernels (csrc/kernels.cpp): built at first use, cached, and a pure-torch stand-in without them.

The source is compiled with ``torch.utils.cpp_extension`` (g++ and ninja, ``-O3 -march=native``) into
``<cache root>/quant-kernels/<key>/``, where the key hashes the source, torch's version and the CPU's model
and flags: a machine with other vector units (AVX2 only, AVX-512 VNNI, ...) gets its own build, and the
compiler's ``-march=native`` picks the fastest integer dot product there (``isa()`` says which). The build
takes 20-60 s once; later processes load the cached library in milliseconds.

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
ENV = "COVE_QUANT_KERNELS"
_lock = threading.Lock()


def _cache_root() -> Path:
    return Path(os.environ.get("COVE_CACHE") or Path.home() / ".cache" / "cove").expanduser()


def build_key() -> str:
    from cove.hardware import cpu_info

    info = cpu_info()
    text = "|".join([SOURCE.read_text(encoding="utf-8"), torch.__version__, info.model, *sorted(info.flags)])
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
            sources=[str(SOURCE)],
            # no fused multiply-adds the source does not spell: the quantizers round as ggml's do
            extra_cflags=["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off"],
            build_directory=str(folder),
            is_python_module=False,
            verbose=False,
        )
    else:
        torch.ops.load_library(str(library))
    return torch.ops.cove_quant


def native_available() -> bool:
    return _native() is not None


def backend() -> str:
    """Which path runs: "native (avx2+avx512vnni)", "native (avx2)", ... or "torch (no native kernels)"."""
    ops = _native()
    return f"native ({ops.isa()})" if ops is not None else "torch (no native kernels)"


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
