"""Kernel figure: Cove's packed-weight matmul (``qmatmul``) in GB/s of weights read, per GGML type, at the
real shapes of SmolLM2-135M's GGUF files, against the machine's plain read bandwidth on the same bytes.

Each row takes one tensor kind of one file (the Q4_K_M file's Q5_0 attn_q, its Q4_K ffn_down, ...), its
real blocks, copied until the set is ``--megabytes`` large (default 192: several times the L3, as a decoding
step streams ~100 MB of weights from DRAM), and times one ``qmatmul`` per copy in turn, at 1 and 8
activation rows; the "read" column is ``torch.sum`` over the same packed bytes viewed as int64 (a
memory-bound pass, what a perfect kernel would approach). Timings are interleaved and repeated, medians
printed, with the load average, the CPU line and the kernel build (``COVE_KERNEL_ISA=avx2`` times the AVX2
build on an AVX-512 machine).

    python benchmarks/quant_kernels.py [--files q4_k_m,q6_k,q8_0,q4_1] [--rows 1,8] [--repeats 5]
        [--megabytes 192] [--gguf-dir DIR]

The extra GGUF files are the ones benchmarks/generation_quant.py writes into its --gguf-dir.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cove.hardware import describe
from cove.quant import kernels
from cove.quant.formats import BY_TYPE

GGUF_DIR = Path(os.environ.get("COVE_CACHE") or Path.home() / ".cache" / "cove") / "bench-gguf"
KINDS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "token_embd")


def file_path(name: str, folder: Path) -> Path:
    if name == "q4_1":
        from generation_quant import bundled_gguf  # benchmarks/generation_quant.py, beside this script

        return bundled_gguf()
    return folder / f"SmolLM2-135M-Instruct.{name.upper()}.gguf"


def tensors(path: Path) -> list[tuple[str, int, int, int, torch.Tensor]]:
    """(kind, type, n, k, packed) of the first tensor of each (kind, type) with a kernel."""
    from gguf import GGUFReader

    seen: dict[tuple[str, int], tuple[str, int, int, int, torch.Tensor]] = {}
    for t in GGUFReader(str(path)).tensors:
        kind = t.name.split(".")[-2]
        qtype = int(t.tensor_type)
        if kind not in KINDS or qtype not in BY_TYPE or (kind, qtype) in seen:
            continue
        k, n = (int(v) for v in t.shape)
        packed = torch.from_numpy(np.ascontiguousarray(t.data).reshape(n, -1).copy())
        seen[kind, qtype] = (kind, qtype, n, k, packed)
    return list(seen.values())


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / calls


def measure(
    packed: torch.Tensor, qtype: int, k: int, rows: list[int], repeats: int, megabytes: float
) -> list[float]:
    """[seconds per read of the packed bytes, then per qmatmul at each row count]: medians over repeats."""
    size = packed.numel()
    copies = max(1, int(megabytes * 1e6 // size))
    # the copies back to back in one buffer (the read pass sums it whole, as int64 words)
    buffer = torch.empty(copies * size + 64, dtype=torch.uint8)
    stack = [buffer[i * size : (i + 1) * size].view(packed.shape) for i in range(copies)]
    for p in stack:
        p.copy_(packed)
    words = buffer[: copies * size // 8 * 8].view(torch.int64)
    xs = [torch.randn(m, k) for m in rows]

    def mul(x: torch.Tensor) -> None:
        for w in stack:
            kernels.qmatmul(x, w, qtype, k)

    for x in xs:
        mul(x)  # warm up
    times: list[list[float]] = [[] for _ in range(len(rows) + 1)]
    for _ in range(repeats):  # interleaved
        times[0].append(per_call(words.sum, copies))
        for i, x in enumerate(xs):
            times[i + 1].append(per_call(lambda x=x: mul(x), copies))
    return [statistics.median(t) for t in times]


def call_overhead() -> float:
    """Seconds per qmatmul call on 8 weight rows (the Python + dispatch + set-up cost each figure includes)."""
    from cove.quant.formats import quantize

    w, x = quantize(torch.randn(8, 576), "Q8_0"), torch.randn(1, 576)
    for _ in range(100):
        kernels.qmatmul(x, w, 8, 576)
    return statistics.median(
        per_call(lambda: [kernels.qmatmul(x, w, 8, 576) for _ in range(1000)], 1000) for _ in range(5)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", default="q4_k_m,q6_k,q8_0,q4_1")
    parser.add_argument("--rows", default="1,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--megabytes", type=float, default=192)
    parser.add_argument("--gguf-dir", type=Path, default=GGUF_DIR)
    args = parser.parse_args()
    rows = [int(r) for r in args.rows.split(",")]
    print(f"hardware: {describe(measure=False)}; Cove kernels: {kernels.isa()}")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {torch.get_num_threads()} threads")
    print(
        f"qmatmul call overhead (8 rows x 576, from Python): {call_overhead() * 1e6:.1f} us, in every figure"
    )
    header = f"{'file':7} {'tensor':12} {'type':5} {'n x k':>12} {'MB':>6}  {'read GB/s':>9}"
    print(header + "".join(f"  {f'{m} row':>7} GB/s  us/call" for m in rows))
    seen: set[tuple[int, int, int]] = set()
    for name in args.files.split(","):
        path = file_path(name, args.gguf_dir)
        if not path.is_file():
            print(f"{name}: {path} not found (benchmarks/generation_quant.py writes it)")
            continue
        for kind, qtype, n, k, packed in tensors(path):
            if (qtype, n, k) in seen:
                continue
            seen.add((qtype, n, k))
            size = packed.numel()
            read, *times = measure(packed, qtype, k, rows, args.repeats, args.megabytes)
            line = f"{name:7} {kind:12} {BY_TYPE[qtype].name:5} {f'{n}x{k}':>12} {size / 1e6:6.2f}"
            line += f"  {size / read / 1e9:9.1f}"
            for t in times:
                line += f"  {size / t / 1e9:12.1f}  {t * 1e6:7.1f}"
            print(line, flush=True)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
