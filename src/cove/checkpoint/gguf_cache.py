"""A disk cache of dequantized GGUF models, so a GGUF loads at safetensors speed from the second time on.

Dequantizing a GGUF file (and undoing llama.cpp's Q/K permutation) takes seconds to tens of seconds; the
result is always the same for the same file. The first load writes it as an HF-style folder (config.json +
float32 model.safetensors + manifest.json) under ``<cache root>/gguf-models/<slot>-<stamp>/``:

- ``slot`` hashes the GGUF file's resolved path, ``stamp`` its size, mtime, inode, a hash of its first and
  last 64 KiB and this cache's format version, so a changed or replaced file gets a new entry; writing a new entry deletes the other entries of
  the same slot (stale ones).
- Entries are written to a temporary folder and renamed into place (atomic on one filesystem): a reader
  never sees a half-written entry, and two processes racing keep one complete copy.
- A hit is checked against its manifest (the file's stamp, each file's size); an entry that fails the
  check or fails to load is deleted and rebuilt.

The cache root is ``$COVE_CACHE`` or ``~/.cache/cove`` (as for GGUF tokenizers); ``COVE_GGUF_CACHE=0``
turns the cache off (every load dequantizes in memory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when what the cache holds changes (conversion fixes): old entries stop matching
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
_EDGE = 64 * 1024


def cache_root() -> Path:
    return Path(os.environ.get("COVE_CACHE") or Path.home() / ".cache" / "cove").expanduser()


def enabled() -> bool:
    return os.environ.get("COVE_GGUF_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def _stamp(path: Path) -> dict[str, Any]:
    """What identifies the file's current contents: path, size, mtime, inode, and a hash of its first and
    last 64 KiB (file timestamps can be milliseconds coarse: a quick rewrite may keep size and mtime)."""
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        digest.update(f.read(_EDGE))
        if stat.st_size > 2 * _EDGE:
            f.seek(-_EDGE, os.SEEK_END)
        digest.update(f.read(_EDGE))
    return {
        "gguf": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "inode": stat.st_ino,
        "edges": digest.hexdigest()[:32],
        "format": FORMAT,
    }


def entry_dir(path: Path, root: Path | None = None) -> Path:
    """Where the cache entry for this GGUF file, as it is now, lives (whether or not it exists)."""
    stamp = _stamp(path)
    slot = hashlib.sha256(stamp["gguf"].encode()).hexdigest()[:16]
    key = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
    return (root or cache_root()) / "gguf-models" / f"{slot}-{key}"


def _valid(entry: Path, stamp: dict[str, Any]) -> bool:
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("stamp") != stamp:
        return False
    sizes = manifest.get("files")
    if not isinstance(sizes, dict) or WEIGHTS not in sizes or "config.json" not in sizes:
        return False
    for name, size in sizes.items():
        file = entry / name
        if Path(name).name != name or not file.is_file() or file.stat().st_size != size:
            return False
    return True


def lookup(path: Path, root: Path | None = None) -> Path | None:
    """The cached folder for this GGUF file if a complete, current entry exists, else None."""
    entry = entry_dir(path, root)
    return entry if entry.is_dir() and _valid(entry, _stamp(path)) else None


def discard(entry: Path) -> None:
    """Remove an entry (a corrupt one): rename it away first so no reader sees it half-deleted."""
    trash = entry.with_name(f".trash-{entry.name}-{uuid.uuid4().hex[:8]}")
    try:
        entry.rename(trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def store(path: Path, config: dict[str, Any], state: dict[str, Any], root: Path | None = None) -> Path:
    """Write a new entry for this GGUF file (config dict + float32 state dict) and drop its stale siblings.

    Returns the entry's folder. Raises OSError when the cache cannot be written.
    """
    from safetensors.torch import save_file

    stamp = _stamp(path)
    entry = entry_dir(path, root)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / "config.json").write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        save_file(
            {k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS), metadata={"format": "pt"}
        )
        files = {name: (tmp / name).stat().st_size for name in ("config.json", WEIGHTS)}
        # the manifest last: an entry without one (or with sizes that disagree) is never used
        (tmp / MANIFEST).write_text(
            json.dumps({"stamp": stamp, "files": files}, indent=2) + "\n", encoding="utf-8"
        )
        if entry.exists():  # a stale or corrupt copy under the same key: replace it
            discard(entry)
        try:
            tmp.rename(entry)
        except OSError:
            if not lookup(path, root):  # not another process's complete copy: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    slot = entry.name.split("-")[0]
    for sibling in entry.parent.glob(f"{slot}-*"):
        if sibling != entry and sibling.is_dir():
            discard(sibling)
    return entry
