"""Whether this machine computes bf16 natively, and how fast: the one place Cove picks a precision by hardware.

bf16 is only worth it where the hardware computes it: CPUs with AMX-BF16 or AVX512-BF16 (aarch64: the
``bf16`` feature), CUDA GPUs of capability 8.0 and up. Elsewhere torch emulates it and a bf16 matmul runs
tens of times slower than fp32 (a 2-core AVX2 EPYC: 0.9 GFLOP/s against 68). So:

- ``bf16_support(device)``: native or emulated, and why (CPU flags from /proc/cpuinfo, else torch's own
  checks; CUDA capability). No measurement, no torch import for the CPU flags.
- ``bf16_speedup(device)``: the measured bf16/fp32 speed ratio of a 256x256 matmul on one thread (a few ms;
  ~0.1 s where bf16 is emulated), run at most once per process, only when a decision needs it.
- ``prefers_bf16(device)``: the decision behind ``dtype="auto"`` and ``TrainingArguments(bf16="auto")``:
  native and measured faster than fp32.
- ``auto_dtype`` / ``warn_if_bf16_is_slow``: what ``from_pretrained`` and the pipelines call; each warning is
  given once per process.
- ``describe()``: the CPU model, its flags, torch's capability and the measured ratio, one line, which the
  benchmarks print beside their figures.

``COVE_BF16=native|emulated|auto`` (default auto) overrides the detection on every device, for tests and
for users who know better; ``native`` also skips the measurement.

Which library runs a float32 inference GEMM is chosen here too (``float32_gemm()``): torch's ``F.linear``
calls MKL, which takes slow generic paths on AMD CPUs (a 2-core AVX-512 EPYC: 32 x 576 @ 576 x 1536 in
0.42 ms, a 32-row 49,152-word LM head in 29 ms), where oneDNN's JIT kernels, also inside torch, take 0.19 ms
and 6.3 ms. Once per process a few interleaved products on both decide; ``COVE_GEMM=auto|onednn|torch``
overrides it.

The thread arrangement of a small decoding step is chosen here too, by measurement on the machine at hand
(``StepThreads``): whether a step of a few token rows runs faster on one intra-op thread or on all of them
depends on the CPU, the shape and, most of all, on how busy the machine is right now, so no constant tuned
on one machine holds on another.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from cove.errors import ConfigError

logger = logging.getLogger("cove.hardware")

ENV_OVERRIDE = "COVE_BF16"
OVERRIDES = ("auto", "native", "emulated")
CPUINFO = "/proc/cpuinfo"
# x86: AMX tiles with bf16, or AVX-512 bf16 dot products; aarch64 (ARMv8.6 and up): the BF16 extension
NATIVE_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
DEVICE_TYPES = ("cpu", "cuda", "mps")
MATMUL_SIZE = 256

_warned: set[str] = set()


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]


@dataclass(frozen=True)
class Bf16Support:
    device: str  # "cpu", "cuda" or "mps"
    native: bool
    reason: str  # what decided it: the flag or capability found, or what is missing


# -- detection -------------------------------------------------------------------------------


@functools.cache
def cpu_info() -> CpuInfo:
    """The CPU's model name and feature flags (/proc/cpuinfo on Linux; elsewhere the flags torch checks)."""
    model, flags = "", set[str]()
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:  # x86 spells it flags, aarch64 Features
                    flags = set(value.split())
    except OSError:
        flags = _torch_cpu_flags()
    return CpuInfo(model or platform.processor() or platform.machine() or "unknown CPU", frozenset(flags))


def _torch_cpu_flags() -> set[str]:
    """Where there is no /proc/cpuinfo (macOS, Windows): the ISA checks torch itself makes."""
    import torch

    checks = {"avx2": "_is_avx2_supported", "avx512f": "_is_avx512_supported"}
    checks |= {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return {flag for flag, name in checks.items() if getattr(torch.cpu, name, lambda: False)()}


def torch_cpu_capability() -> str:
    """The vector ISA torch's CPU kernels were dispatched to ("AVX512", "AVX2", "DEFAULT", ...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def cuda_capability() -> tuple[int, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return int(major), int(minor)


def device_type(device: Any) -> str:
    """``None``, "cpu", "cuda:1", an int (a CUDA index, -1 = CPU, as in transformers' pipelines) or a
    torch.device -> "cpu" / "cuda" / "mps"; anything else raises ConfigError naming it."""
    if device is None:
        return "cpu"
    if isinstance(device, int) and not isinstance(device, bool):
        return "cpu" if device < 0 else "cuda"
    kind = getattr(device, "type", None)  # a torch.device
    if kind is None and isinstance(device, str):
        kind, sep, index = device.strip().lower().partition(":")
        if sep and not index.isdigit():
            kind = None
    if kind not in DEVICE_TYPES:
        raise ConfigError(
            f"Unknown device {device!r}: Cove chooses a precision for {', '.join(DEVICE_TYPES)} devices "
            "(e.g. 'cpu', 'cuda', 'cuda:1', 0). Pass one of those, or an explicit dtype such as 'float32'."
        )
    return str(kind)


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """Environment variable ``name``, lower-cased, one of ``choices`` (unset or empty: the first of them);
    anything else is a ConfigError naming the choices."""
    value = os.environ.get(name, choices[0]).strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not understood; use one of {', '.join(choices)}.")
    return value


def _override() -> str:
    return env_choice(ENV_OVERRIDE, OVERRIDES)


def bf16_support(device: Any = None) -> Bf16Support:
    """Whether ``device`` computes bf16 natively: COVE_BF16 if set, else CPU flags / CUDA capability."""
    kind = device_type(device)
    override = _override()
    if override != "auto":
        return Bf16Support(kind, override == "native", f"{ENV_OVERRIDE}={override}")
    return _detected(kind)


@functools.cache
def _detected(kind: str) -> Bf16Support:
    if kind == "cpu":
        found = [flag for flag in NATIVE_CPU_FLAGS if flag in cpu_info().flags]
        if found:
            return Bf16Support(kind, True, found[0])
        return Bf16Support(kind, False, "no AVX512-BF16/AMX")
    if kind == "cuda":
        capability = cuda_capability()
        if capability is None:
            return Bf16Support(kind, False, "CUDA is not available")
        reason = f"CUDA capability {capability[0]}.{capability[1]}"
        return Bf16Support(kind, capability >= (8, 0), reason + ("" if capability >= (8, 0) else " < 8.0"))
    return Bf16Support(
        kind, False, f"bf16 support on {kind} is not known to Cove (set {ENV_OVERRIDE}=native)"
    )


# -- measurement -----------------------------------------------------------------------------


def bf16_speedup(device: Any = None) -> float:
    """bf16 matmul speed / fp32 matmul speed on ``device`` (> 1: bf16 is faster), measured once per process."""
    return _measured(device_type(device))


@functools.cache
def _measured(kind: str) -> float:
    return measure_matmul_ratio(kind)


def measure_matmul_ratio(kind: str = "cpu", size: int = MATMUL_SIZE, budget_s: float = 0.08) -> float:
    """Best-of-several timing of a ``size``-square matmul in fp32 and bf16, interleaved, on one CPU thread
    (so a busy machine's scheduling noise does not decide it); emulated bf16 stops after ``budget_s``."""
    import torch

    synchronize = torch.cuda.synchronize if kind == "cuda" else (lambda: None)
    threads = torch.get_num_threads()
    if kind == "cpu":
        torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=generator).to(kind)
        b = torch.randn(size, size, generator=generator).to(kind)
        pairs = {torch.float32: (a, b), torch.bfloat16: (a.bfloat16(), b.bfloat16())}
        best = {dtype: float("inf") for dtype in pairs}
        spent = 0.0
        for rep in range(6):
            for dtype, (x, y) in pairs.items():
                if dtype is torch.bfloat16 and rep >= 2 and spent > budget_s:
                    continue
                synchronize()
                start = time.perf_counter()
                x @ y
                synchronize()
                elapsed = time.perf_counter() - start
                if rep:  # the first round warms up (kernels, thread pool, caches)
                    best[dtype] = min(best[dtype], elapsed)
                if dtype is torch.bfloat16:
                    spent += elapsed
    finally:
        if kind == "cpu":
            torch.set_num_threads(threads)
    return best[torch.float32] / max(best[torch.bfloat16], 1e-9)


# -- decisions -------------------------------------------------------------------------------


def prefers_bf16(device: Any = None) -> bool:
    """bf16 where it is native and measured faster than fp32; fp32 everywhere else."""
    support = bf16_support(device)
    if not support.native:
        return False
    if support.reason.startswith(ENV_OVERRIDE) or support.device == "cuda":
        return True  # COVE_BF16=native is taken at its word; Ampere and later always win
    return bf16_speedup(device) > 1.0


def auto_dtype(
    checkpoint_dtype: str | None,
    device: Any = None,
    *,
    source: str = "the checkpoint",
    asked: str = "dtype='auto'",
) -> str:
    """``dtype="auto"``: the checkpoint's own dtype (transformers' meaning), except bf16 where this device
    emulates it or runs it slower than fp32: then float32, said once per process."""
    kind = device_type(device)  # an unknown device fails here, before anything is decided
    wanted = str(checkpoint_dtype or "float32").removeprefix("torch.")
    if wanted != "bfloat16" or prefers_bf16(kind):
        return wanted
    _warn_once(
        f"auto:{kind}",
        "%s: %s is stored in bfloat16, but %s; loading it in float32. Pass dtype='bfloat16' to load it in "
        "bf16 anyway, or set %s=native if this machine computes bf16 natively.",
        asked,
        source,
        slowdown(kind),
        ENV_OVERRIDE,
    )
    return "float32"


def warn_if_bf16_is_slow(device: Any = None, *, what: str = "dtype=bfloat16") -> None:
    """An explicit bf16 request on a device that emulates it still runs, with one warning per process."""
    try:
        kind = device_type(device)
    except ConfigError:
        return  # an explicit dtype takes any device torch takes; torch reports a bad one
    if prefers_bf16(kind):
        return
    _warn_once(
        f"explicit:{what}:{kind}",
        "%s: %s; float32 (or 'auto') is faster here.",
        what,
        slowdown(kind),
    )


def slowdown(device: Any = None) -> str:
    """Why bf16 is not used: "bf16 matmuls run 12x slower than fp32 on this CPU (AMD EPYC ..., AVX2, ...)"."""
    kind = device_type(device)
    support = bf16_support(kind)
    where = f"this CPU ({cpu_summary()})" if kind == "cpu" else f"this {kind} device ({support.reason})"
    if kind == "mps" or (kind == "cuda" and cuda_capability() is None):
        return f"bf16 may be emulated on {where}"
    ratio = bf16_speedup(kind)
    if ratio >= 1.0:
        return (
            f"bf16 is treated as emulated on {where} ({support.reason}; measured {ratio:.1f}x fp32's speed)"
        )
    times = 1 / max(ratio, 1e-9)
    digits = ".0f" if times >= 10 else ".1f"
    return f"bf16 matmuls run {times:{digits}}x slower than fp32 on {where}"


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key in _warned:
        return
    _warned.add(key)
    logger.warning(message, *args)


# -- float32 GEMM library ---------------------------------------------------------------------

GEMM_ENV = "COVE_GEMM"
GEMM_CHOICES = ("auto", "onednn", "torch")
GEMM_SHAPE = (32, 512, 2048)  # rows, in, out: a batched decoding step's projection
GEMM_MARGIN = 1.2  # oneDNN is taken only when clearly faster


def gemm_setting() -> str:
    """``COVE_GEMM``: "auto" (default), "onednn" or "torch"."""
    return env_choice(GEMM_ENV, GEMM_CHOICES)


def onednn_linear_available() -> bool:
    """Whether this torch has oneDNN's linear op (x86 and aarch64 CPU builds do)."""
    import torch

    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """oneDNN's float32 ``x @ weight.T + bias`` for a 2-D x and an (out, in) weight, which may be a
    transposed view (no autograd: inference only)."""
    import torch

    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@functools.cache
def float32_gemm() -> str:
    """ "onednn" or "torch": the library Cove's inference projections above the small-M kernel's rows use
    (``cove.models.modeling.linear``), by ``COVE_GEMM`` or else by measurement, once per process."""
    setting = gemm_setting()
    if setting == "torch" or not onednn_linear_available():
        return "torch"
    if setting == "onednn":
        return "onednn"
    ratio = gemm_speedup()
    choice = "onednn" if ratio >= GEMM_MARGIN else "torch"
    logger.info("float32 GEMM: oneDNN is %.2fx torch's on this CPU; using %s", ratio, choice)
    return choice


@functools.cache
def gemm_speedup() -> float:
    """oneDNN's float32 GEMM speed / torch's on this CPU, measured once per process."""
    return measure_gemm_ratio()


def measure_gemm_ratio(shape: tuple[int, int, int] = GEMM_SHAPE, rounds: int = 7) -> float:
    """torch's F.linear time / oneDNN's on a float32 ``rows x in @ in x out`` product (> 1: oneDNN is
    faster): the best of ``rounds`` interleaved calls each, after a warm-up; about 10 ms on a slow CPU."""
    import torch
    import torch.nn.functional as F

    rows, fan_in, fan_out = shape
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, fan_in, generator=generator)
    weight = torch.randn(fan_out, fan_in, generator=generator)
    calls = {
        "torch": lambda: F.linear(x, weight),
        "onednn": lambda: onednn_linear(x, weight),
    }
    best = dict.fromkeys(calls, float("inf"))
    with torch.no_grad():
        for rep in range(rounds + 1):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
                if rep:  # the first round warms up (oneDNN's JIT, the thread pool)
                    best[name] = min(best[name], elapsed)
    return best["torch"] / max(best["onednn"], 1e-9)


def _reset() -> None:
    """Forget every cached detection, measurement and warning (tests)."""
    cpu_info.cache_clear()
    _detected.cache_clear()
    _measured.cache_clear()
    float32_gemm.cache_clear()
    gemm_speedup.cache_clear()
    _warned.clear()
    step_threads.reset()


# -- thread arrangement of small steps --------------------------------------------------------

STEP_THREADS_ENV = "COVE_STEP_THREADS"
# "layers": the decoder layers on one thread, the LM head (a vocabulary-sized product) on every thread;
# "one": the whole forward on one thread; "all": every thread throughout
STEP_ARMS = ("layers", "one", "all")


def step_threads_setting() -> str:
    """``COVE_STEP_THREADS``: "auto" (default: measured by ``StepThreads``) or one arm of ``STEP_ARMS``."""
    value = os.environ.get(STEP_THREADS_ENV, "auto").strip().lower() or "auto"
    if value != "auto" and value not in STEP_ARMS:
        raise ConfigError(
            f"{STEP_THREADS_ENV}={value!r} is not understood; use auto or one of {', '.join(STEP_ARMS)}."
        )
    return value


class StepThreads:
    """Which arrangement of threads (``STEP_ARMS``) a small forward pass of a given kind runs in, chosen by
    timing the passes themselves.

    A decoding step is a few dozen matrix-vector products bound by memory bandwidth plus hundreds of tiny ops.
    On an idle machine two threads read the weights faster; on a busy one every OpenMP parallel region waits
    at its barrier for a descheduled thread (a time slice, milliseconds, against microseconds of work), and
    one thread wins by several times (measured on 2 cores at load 12: 0.14 s a step on one thread, 1.0 s on
    two). Which one wins moves with the load, so it is measured as generation runs:

    - the first passes of a kind run each arrangement once, in ``STEP_ARMS`` order, then the ones within
      ``CONTENDER`` times the best so far again, interleaved, until each has ``WINDOW`` times;
    - then the arrangement with the lowest median of its last ``WINDOW`` times runs;
    - another one is re-timed, so a change of load is noticed, once it has waited ``PROBE_EVERY`` passes and
      long enough that its re-timing costs at most ``PROBE_SHARE`` of the time spent (an arrangement 7x
      slower than the best waits 140 passes), the longest-waiting first.

    The arrangement never changes the result beyond the last bit (see
    cove.generation.utils.small_step_limit), only the speed. ``kind`` is any hashable the caller builds
    (model, token rows, thread count); the most recent ``KINDS`` kinds are remembered for the process, so the
    next ``generate`` call starts from what the last one measured. Thread-safe: concurrent generations share
    the measurements.
    """

    WINDOW = 3
    CONTENDER = 2.0
    PROBE_EVERY = 16
    PROBE_SHARE = 0.05
    KINDS = 64

    def __init__(self, arms: tuple[str, ...] = STEP_ARMS) -> None:
        self.arms = arms
        self._lock = threading.Lock()
        self._kinds: OrderedDict[Hashable, _ArmTimes] = OrderedDict()

    def choose(self, kind: Hashable) -> str:
        """The arrangement the next pass of ``kind`` runs in (``COVE_STEP_THREADS`` may fix it)."""
        fixed = step_threads_setting()
        if fixed != "auto":
            return fixed
        with self._lock:
            state = self._state(kind)
            state.passes += 1
            arm = self._pick(state)
            state.last[arm] = state.passes
            return arm

    def _pick(self, state: _ArmTimes) -> str:
        untimed = [arm for arm in self.arms if not state.times[arm]]
        if untimed:
            return untimed[0]
        median = {arm: statistics.median(times) for arm, times in state.times.items()}
        best = min(self.arms, key=lambda arm: median[arm])
        contenders = [
            arm
            for arm in self.arms
            if len(state.times[arm]) < self.WINDOW and min(state.times[arm]) <= self.CONTENDER * median[best]
        ]
        if contenders:
            return min(contenders, key=lambda arm: len(state.times[arm]))
        due = [
            arm
            for arm in self.arms
            if arm != best
            and state.passes - state.last[arm]
            >= max(self.PROBE_EVERY, median[arm] / (self.PROBE_SHARE * max(median[best], 1e-9)))
        ]
        return min(due, key=lambda arm: state.last[arm]) if due else best

    def record(self, kind: Hashable, arm: str, seconds: float) -> None:
        with self._lock:
            self._state(kind).times[arm].append(seconds)

    def summary(self) -> dict[Hashable, dict[str, float]]:
        """Each kind's median recent time per arm (seconds), the arm it runs now first."""
        with self._lock:
            out = {}
            for kind, state in self._kinds.items():
                timed = {a: statistics.median(t) for a, t in state.times.items() if t}
                if timed:
                    best = min(timed, key=lambda a: timed[a])
                    out[kind] = {best: timed[best]} | timed
            return out

    def reset(self) -> None:
        with self._lock:
            self._kinds.clear()

    def _state(self, kind: Hashable) -> _ArmTimes:
        state = self._kinds.get(kind)
        if state is None:
            state = self._kinds[kind] = _ArmTimes(self.arms, self.WINDOW)
            while len(self._kinds) > self.KINDS:
                self._kinds.popitem(last=False)
        else:
            self._kinds.move_to_end(kind)
        return state


class _ArmTimes:
    def __init__(self, arms: tuple[str, ...], window: int) -> None:
        self.times: dict[str, deque[float]] = {arm: deque(maxlen=window) for arm in arms}
        self.last = dict.fromkeys(arms, 0)  # the pass each arm last ran on
        self.passes = 0


step_threads = StepThreads()  # the process's measurements, used by cove.generation


# -- description -----------------------------------------------------------------------------


def cpu_summary() -> str:
    """ "AMD EPYC, AVX2, no AVX512-BF16/AMX": the CPU model, its widest vector ISA and its bf16 flags."""
    info = cpu_info()
    isa = next(
        (
            name
            for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("asimd", "NEON"))
            if flag in info.flags
        ),
        platform.machine() or "unknown ISA",
    )
    bf16 = [flag.upper().replace("_", "-") for flag in NATIVE_CPU_FLAGS if flag in info.flags]
    summary = f"{info.model}, {isa}, {'+'.join(bf16) if bf16 else 'no AVX512-BF16/AMX'}"
    if cap := os.environ.get("ONEDNN_MAX_CPU_ISA"):  # oneDNN (torch's bf16 matmuls) told to use less
        summary += f", ONEDNN_MAX_CPU_ISA={cap}"
    return summary


def describe(device: Any = None, *, measure: bool = True) -> str:
    """One line for benchmark headers: CPU, cores, torch's capability, bf16 support and its measured speed."""
    import torch

    kind = device_type(device)
    support = bf16_support(kind)
    parts = [f"CPU {cpu_summary()}", f"{os.cpu_count()} cores"]
    parts.append(
        f"torch {torch.__version__} capability {torch_cpu_capability()}, {torch.get_num_threads()} threads"
    )
    if kind == "cuda" and (capability := cuda_capability()) is not None:
        parts.append(f"GPU {torch.cuda.get_device_name()} (capability {capability[0]}.{capability[1]})")
    verdict = f"bf16 {'native' if support.native else 'emulated'} on {kind} ({support.reason})"
    if measure:
        verdict += f", {MATMUL_SIZE}x{MATMUL_SIZE} matmul bf16/fp32 speed {bf16_speedup(kind):.2f}x"
        verdict += f"; auto picks {'bf16' if prefers_bf16(kind) else 'fp32'}"
    parts.append(verdict)
    if measure and kind == "cpu":
        gemm = f"float32 GEMM {float32_gemm()}"
        if gemm_setting() == "auto" and onednn_linear_available():
            gemm += f" (oneDNN {gemm_speedup():.2f}x torch's at {'x'.join(map(str, GEMM_SHAPE))})"
        parts.append(gemm)
    return "; ".join(parts)
