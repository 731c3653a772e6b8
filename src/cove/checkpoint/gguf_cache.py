"""A disk cache of dequantized GGUF models, so a GGUF loads at safetensors speed from the second time on.

Dequantizing a GGUF file (and undoing llama.cpp's Q/K permutation) takes seconds to tens of seconds; the
result is always the same for the same file. The first load writes it as an HF-style folder (config.json +
float32 model.safetensors + manifest.json) under ``<cache root>/gguf-models/<slot>-<stamp>/``:

- ``slot`` hashes the GGUF file's resolved path, ``stamp`` its size, mtime, inode, a hash of its first and
  last 64 KiB and this cache's format version, so a changed or replaced file gets a new entry; writing a new
  entry deletes the other entries of the same slot (stale ones).
- Entries are written to a temporary folder and renamed into place (atomic on one filesystem): a reader
  never sees a half-written entry.
- A complete entry is never moved or replaced while its file is unchanged: a writer that finds one keeps it
  and drops its own copy, so a reader that resolved an entry keeps reading the same files. Only an entry
  that is not complete (no manifest, sizes or safetensors header that disagree) is replaced or discarded.
  Those decisions (look at the entry, then rename) are made under a per-slot file lock in
  ``<cache root>/gguf-locks/``, held for a few renames only (the slow write happens before it), so racing
  writers, readers that found a damaged entry and writers replacing it cannot undo each other's work.
- A hit is checked against its manifest (the file's stamp, each file's size); an entry that fails the
  check or fails to load is deleted and rebuilt.

The cache root is ``$COVE_CACHE`` or ``~/.cache/cove`` (as for GGUF tokenizers); ``COVE_GGUF_CACHE=0``
turns the cache off (every load dequantizes in memory).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when what the cache holds changes (conversion fixes): old entries stop matching
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
_EDGE = 64 * 1024
_LOCK_TIMEOUT = 60.0  # seconds; the lock is held for a few renames, so only a stuck process holds it


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


def _complete(entry: Path) -> bool:
    """Whether an entry is whole, judged from the entry alone (no GGUF file needed): its manifest's stamp is
    the one its name was made from, the sizes match, config.json parses and the safetensors header is
    consistent with the file. This is what a writer must see before it keeps an entry instead of its own
    copy, and what makes a reader's "this entry failed to load" drop it."""
    from safetensors import SafetensorError, safe_open

    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        stamp = manifest["stamp"]
        slot, key = entry.name.split("-", 1)
        if hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16] != key:
            return False
        if hashlib.sha256(stamp["gguf"].encode()).hexdigest()[:16] != slot:
            return False
        if not _valid(entry, stamp):
            return False
        if not isinstance(json.loads((entry / "config.json").read_text(encoding="utf-8")), dict):
            return False
        with safe_open(str(entry / WEIGHTS), framework="numpy"):  # parses and checks the header
            pass
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError):
        return False  # a manifest of the wrong shape or an unreadable file: not whole
    return True


@contextlib.contextmanager
def _slot_lock(entry: Path) -> Iterator[None]:
    """Held while deciding what is in place under this entry's slot and renaming: across threads and
    processes. A Timeout is an OSError, which callers treat as "cache not writable"."""
    from filelock import FileLock

    locks = entry.parent.parent / "gguf-locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{entry.name.split('-')[0]}.lock"), timeout=_LOCK_TIMEOUT):
        yield


def _move_away(entry: Path) -> Path | None:
    """Rename an entry out of the way (no reader then sees it half-deleted); the trash folder to delete, or
    None if it was not there."""
    trash = entry.with_name(f".trash-{entry.name}-{uuid.uuid4().hex[:8]}")
    try:
        entry.rename(trash)
    except OSError:
        return None
    return trash


def discard(entry: Path) -> None:
    """Remove an entry that failed to load, unless it is complete by now.

    A reader that failed on a damaged entry calls this; by then another process may have replaced the entry
    with a complete one, which must not be thrown away.
    """
    try:
        with _slot_lock(entry):
            trash = None if _complete(entry) else _move_away(entry)
    except OSError:
        return
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def store(path: Path, config: dict[str, Any], state: dict[str, Any], root: Path | None = None) -> Path:
    """Write a new entry for this GGUF file (config dict + float32 state dict) and drop its stale siblings.

    Returns the entry's folder. If a complete entry is already there (another writer's), that one is kept
    and this copy dropped. Raises OSError when the cache cannot be written.
    """
    from safetensors.torch import save_file

    stamp = _stamp(path)
    entry = entry_dir(path, root)
    if _complete(entry):  # saves writing hundreds of MB; decided again under the lock below
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    trash: list[Path | None] = []
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
        with _slot_lock(entry):
            if not _complete(entry):
                if entry.exists():  # damaged or half-written: replace it
                    trash.append(_move_away(entry))
                try:
                    tmp.rename(entry)
                except OSError:
                    # only a writer that takes no lock (an older Cove) can have put something here
                    if not _complete(entry):
                        raise
            slot = entry.name.split("-")[0]
            for sibling in entry.parent.glob(f"{slot}-*"):
                if sibling != entry and sibling.is_dir():
                    trash.append(_move_away(sibling))
    finally:
        for folder in [tmp, *trash]:
            if folder is not None and folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
    return entry
