"""A repo's files at one commit as a model folder, made from the hub's own store (no HTTP, no client cache).

Folders live under ``<data dir>/inference/snapshots/<commit>/``: a commit id is global and its tree never
changes, so a finished folder is reused as is. Disk blobs are linked (a symlink per file, a copy where the
filesystem refuses links); other blob stores (S3) are streamed into files. A folder is assembled under a
temporary name and renamed into place, so a reader never sees half of one, and two servers racing to
build it both end with the same folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cove.store import DiskBlobStore, FileEntry, RepoStore

# files no Cove loader reads: not worth streaming out of an object store
_SKIPPED_SUFFIXES = (".onnx", ".onnx_data", ".h5", ".msgpack", ".ot", ".tflite", ".mlmodel", ".pb", ".md5")
_SKIPPED_FOLDERS = ("onnx/", "openvino/", "coreml/", "tf/", "flax/")


def wanted(tree: dict[str, FileEntry]) -> dict[str, FileEntry]:
    """The files a model load can use: no other frameworks' exports, no .bin weights beside safetensors."""
    has_safetensors = any(p.endswith(".safetensors") for p in tree)
    out = {}
    for path, entry in tree.items():
        if path.endswith(_SKIPPED_SUFFIXES) or path.startswith(_SKIPPED_FOLDERS):
            continue
        if has_safetensors and path.endswith((".bin", ".pt", ".pth")):
            continue
        out[path] = entry
    return out


def materialize(store: RepoStore, root: Path, commit: str, tree: dict[str, FileEntry]) -> Path:
    """The folder holding tree's files for commit (built once)."""
    folder = root / "snapshots" / commit
    if (folder / ".cove-complete").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    (root / "snapshots").mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=root / "snapshots"))
    try:
        for path, entry in wanted(tree).items():
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            _place(store, entry, target)
        (staging / ".cove-complete").write_text(commit)
        try:
            os.rename(staging, folder)
        except OSError:
            # another request (or server) finished first; an incomplete leftover is replaced
            if not (folder / ".cove-complete").is_file():
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _place(store: RepoStore, entry: FileEntry, target: Path) -> None:
    blobs = store.blobs
    if isinstance(blobs, DiskBlobStore):
        source = blobs.path(entry.sha256)
        try:
            target.symlink_to(source)
            return
        except OSError:
            shutil.copyfile(source, target)
            return
    with blobs.open(entry.sha256) as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
