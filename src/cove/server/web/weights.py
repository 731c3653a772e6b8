"""Weight files' headers, read from their first bytes only: a safetensors header (8-byte length + JSON)
and a GGUF header (metadata and tensor table, never the tensor data), through ranged reads of the blob
store under a byte cap, so a 5 GB checkpoint costs its page a few kilobytes.

Parsed headers are cached by the blob's sha256 (content-addressed: an entry never goes stale)."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cove.errors import CheckpointError
from cove.server.web.cache import LRU
from cove.store import FileEntry, RepoStore

# safetensors refuses headers over 100 MB; a real model's is a few hundred kB, so the page reads at most this
MAX_SAFETENSORS_HEADER = 16 * 1024**2
# a GGUF header holds the whole vocabulary (and merges): a 256k-token model's is ~10 MB
MAX_GGUF_HEADER = 64 * 1024**2
_CHUNK = 1024**2
_MAX_GGUF_ITEMS = 10_000_000  # tensors, metadata keys or array items: a larger count is a corrupt header
_ARRAY_HEAD = 8  # array items kept for display

ReadRange = Callable[[int, int], bytes]  # (start, end exclusive) -> bytes


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def params(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ArrayValue:
    """A GGUF metadata array: its item type, length and first items (a vocabulary is not worth showing)."""

    item_type: str
    count: int
    head: tuple[Any, ...]

    def __str__(self) -> str:
        items = ", ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in self.head)
        more = ", ..." if self.count > len(self.head) else ""
        return f"[{items}{more}] ({self.count:,} {self.item_type})"


@dataclass(frozen=True)
class WeightsHeader:
    format: str  # "safetensors" | "gguf"
    tensors: tuple[Tensor, ...]
    metadata: dict[str, Any] = field(default_factory=dict)  # safetensors' __metadata__, GGUF's key-values
    header_bytes: int = 0
    version: int | None = None  # GGUF's format version

    @property
    def total_params(self) -> int:
        return sum(t.params for t in self.tensors)

    def params_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.dtype] = out.get(t.dtype, 0) + t.params
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def tensor_map(self) -> dict[str, Tensor]:
        return {t.name: t for t in self.tensors}


def weights_format(path: str) -> str | None:
    name = path.lower()
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".gguf"):
        return "gguf"
    return None


def format_params(n: int) -> str:
    """124M, 1.1B, 7.2k: the way model pages count parameters."""
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.3g}{unit}"
    return str(n)


# --- safetensors ------------------------------------------------------------------------------------------


def read_safetensors_header(
    read: ReadRange, size: int, *, cap: int = MAX_SAFETENSORS_HEADER
) -> WeightsHeader:
    if size < 8:
        raise CheckpointError(f"Not a safetensors file: {size} bytes, shorter than the 8-byte header length.")
    (length,) = struct.unpack("<Q", read(0, 8))
    if length > cap:
        raise CheckpointError(
            f"The safetensors header is {length:,} bytes, over the {cap:,} this page reads: "
            "download the file to inspect it."
        )
    if 8 + length > size:
        raise CheckpointError(
            f"Corrupt safetensors file: its header claims {length:,} bytes but the file has {size:,}."
        )
    raw = read(8, 8 + length)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"Corrupt safetensors file: its header is not JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise CheckpointError("Corrupt safetensors file: its header is not a JSON object.")
    metadata = data.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError("Corrupt safetensors file: __metadata__ is not an object of strings.")
    tensors = []
    for name, info in data.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if (
            not isinstance(dtype, str)
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise CheckpointError(
                f"Corrupt safetensors file: tensor {name!r} needs a dtype string and a shape of "
                f"non-negative integers, got {info!r:.200}."
            )
        tensors.append(Tensor(name, dtype, tuple(shape)))
    tensors.sort(key=lambda t: t.name)
    return WeightsHeader(
        "safetensors", tuple(tensors), {str(k): str(v) for k, v in metadata.items()}, 8 + length
    )


# --- GGUF -------------------------------------------------------------------------------------------------


class _HeaderTooLarge(Exception):
    pass


class _Reader:
    """Sequential reads over ranged reads, fetched a chunk at a time and never past cap."""

    def __init__(self, read: ReadRange, size: int, cap: int) -> None:
        self._read, self.size, self.cap = read, size, cap
        self.pos = 0
        self._buf, self._buf_start = b"", 0

    def _check(self, n: int) -> int:
        end = self.pos + n
        if end > self.size:
            raise CheckpointError(
                f"Corrupt GGUF file: its header runs past the end of the file ({self.size:,} bytes)."
            )
        if end > self.cap:
            raise _HeaderTooLarge()
        return end

    def take(self, n: int) -> bytes:
        end = self._check(n)
        if not (self._buf_start <= self.pos and end <= self._buf_start + len(self._buf)):
            self._buf = self._read(self.pos, min(self.size, self.cap, self.pos + max(n, _CHUNK)))
            self._buf_start = self.pos
        offset = self.pos - self._buf_start
        out = self._buf[offset : offset + n]
        self.pos = end
        return out

    def skip(self, n: int) -> None:
        self.pos = self._check(n)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("Q")
        return self.take(n).decode("utf-8", "replace")


# GGUF value types: id -> (name, struct format or None for string/array)
_GGUF_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("uint8", "B"),
    1: ("int8", "b"),
    2: ("uint16", "H"),
    3: ("int16", "h"),
    4: ("uint32", "I"),
    5: ("int32", "i"),
    6: ("float32", "f"),
    7: ("bool", "?"),
    8: ("string", None),
    9: ("array", None),
    10: ("uint64", "Q"),
    11: ("int64", "q"),
    12: ("float64", "d"),
}


def _gguf_value(r: _Reader, kind: int, depth: int = 0) -> Any:
    if kind not in _GGUF_TYPES:
        raise CheckpointError(f"Corrupt GGUF file: unknown metadata value type {kind} at byte {r.pos}.")
    name, fmt = _GGUF_TYPES[kind]
    if fmt is not None:
        return r.unpack(fmt)
    if name == "string":
        return r.string()
    item_kind, count = r.unpack("I"), r.unpack("Q")
    if count > _MAX_GGUF_ITEMS or depth > 3:
        raise CheckpointError(f"Corrupt GGUF file: an array of {count:,} items (or nested too deeply).")
    item_name, item_fmt = _GGUF_TYPES.get(item_kind, (f"type {item_kind}", None))
    head = tuple(_gguf_value(r, item_kind, depth + 1) for _ in range(min(count, _ARRAY_HEAD)))
    rest = count - len(head)
    if item_fmt is not None:
        r.skip(rest * struct.calcsize(item_fmt))  # fixed-size items: no need to read them
    else:
        for _ in range(rest):
            _gguf_value(r, item_kind, depth + 1)
    return ArrayValue(item_name, count, head)


def _ggml_type_name(kind: int) -> str:
    try:
        import gguf

        return gguf.GGMLQuantizationType(kind).name
    except (ImportError, ValueError):
        return f"type {kind}"


def read_gguf_header(read: ReadRange, size: int, *, cap: int = MAX_GGUF_HEADER) -> WeightsHeader:
    r = _Reader(read, size, cap)
    try:
        if size < 24 or r.take(4) != b"GGUF":
            raise CheckpointError("Not a GGUF file: it does not start with the GGUF magic bytes.")
        version = r.unpack("I")
        if version not in (2, 3):
            raise CheckpointError(f"GGUF version {version} is not supported: Cove reads versions 2 and 3.")
        tensor_count, kv_count = r.unpack("Q"), r.unpack("Q")
        if tensor_count > _MAX_GGUF_ITEMS or kv_count > _MAX_GGUF_ITEMS:
            raise CheckpointError(
                f"Corrupt GGUF file: {tensor_count:,} tensors and {kv_count:,} metadata keys."
            )
        metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key = r.string()
            metadata[key] = _gguf_value(r, r.unpack("I"))
        tensors = []
        for _ in range(tensor_count):
            name = r.string()
            n_dims = r.unpack("I")
            if n_dims > 8:
                raise CheckpointError(f"Corrupt GGUF file: tensor {name!r} has {n_dims} dimensions.")
            shape = tuple(r.unpack("Q") for _ in range(n_dims))
            kind = r.unpack("I")
            r.skip(8)  # the data offset: the page never reads tensor data
            tensors.append(Tensor(name, _ggml_type_name(kind), shape))
    except _HeaderTooLarge:
        raise CheckpointError(
            f"The GGUF header is larger than the {cap:,} bytes this page reads: download the file to inspect it."
        ) from None
    return WeightsHeader("gguf", tuple(tensors), metadata, r.pos, version)


# --- from the blob store, cached --------------------------------------------------------------------------


@dataclass(frozen=True)
class HeaderResult:
    header: WeightsHeader | None
    error: str | None


_headers: LRU[HeaderResult] = LRU(max_items=512)


def blob_reader(store: RepoStore, sha256: str) -> ReadRange:
    def read(start: int, end: int) -> bytes:
        return b"".join(store.blobs.iter_range(sha256, start, end))

    return read


def header_of(store: RepoStore, entry: FileEntry) -> HeaderResult:
    """The parsed header of a safetensors or GGUF file (or why it could not be read); None for others."""
    kind = weights_format(entry.path)
    if kind is None:
        return HeaderResult(None, None)
    key = (kind, entry.sha256)
    hit = _headers.get(key)
    if hit is not None:
        return hit
    reader = read_safetensors_header if kind == "safetensors" else read_gguf_header
    try:
        result = HeaderResult(reader(blob_reader(store, entry.sha256), entry.size), None)
    except CheckpointError as exc:
        result = HeaderResult(None, str(exc))
    except OSError as exc:  # the blob is gone (a gc'd store): say so, do not fail the page
        return HeaderResult(None, f"The file's bytes could not be read: {exc}.")
    return _headers.put(key, result)


@dataclass(frozen=True)
class ModelSize:
    params: int
    dtypes: tuple[str, ...]
    files: int
    partial: bool  # some weight files were not read (too many, or unreadable)


def model_size(store: RepoStore, tree: dict[str, FileEntry], *, max_files: int = 64) -> ModelSize | None:
    """Parameters over a repo's safetensors files (GGUF when it has none), from their headers."""
    for kind in ("safetensors", "gguf"):
        files = sorted(p for p in tree if weights_format(p) == kind)
        if not files:
            continue
        params, read, partial = 0, 0, len(files) > max_files
        dtypes: dict[str, int] = {}
        for path in files[:max_files]:
            result = header_of(store, tree[path])
            if result.header is None:
                partial = True
                continue
            read += 1
            params += result.header.total_params
            for dtype, n in result.header.params_by_dtype().items():
                dtypes[dtype] = dtypes.get(dtype, 0) + n
            if kind == "gguf":
                break  # GGUF repos hold one model in several quantizations: count the first
        if read:
            ordered = tuple(d for d, _ in sorted(dtypes.items(), key=lambda kv: -kv[1]))
            return ModelSize(params, ordered, read, partial)
    return None
