"""The huggingface_hub cache layout (blobs/refs/snapshots), so Cove and huggingface_hub share one cache.

<cache>/models--ns--name/blobs/<etag>            file contents, named by their ETag
<cache>/models--ns--name/refs/<revision>         the commit a branch or tag pointed to
<cache>/models--ns--name/snapshots/<commit>/...  relative symlinks into blobs/
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def is_offline() -> bool:
    return any(
        os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE")
        for k in ("HF_HUB_OFFLINE", "COVE_OFFLINE")
    )


def cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def repo_folder(repo_id: str, repo_type: str = "model", root: Path | None = None) -> Path:
    return (root or cache_dir()) / f"{repo_type}s--{repo_id.replace('/', '--')}"


def cached_commit(folder: Path, revision: str | None) -> str | None:
    """The commit a revision points to in the cache (a commit id is itself), or None."""
    revision = revision or "main"
    if _HEX40.match(revision):
        return revision if (folder / "snapshots" / revision).is_dir() else None
    ref = folder / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


def write_ref(folder: Path, revision: str, commit: str) -> None:
    if _HEX40.match(revision) or revision == commit:
        return
    ref = folder / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    if not ref.is_file() or ref.read_text().strip() != commit:
        ref.write_text(commit)


def link_snapshot(folder: Path, commit: str, filename: str, etag: str) -> Path:
    """snapshots/<commit>/<filename> as a relative symlink to blobs/<etag> (a copy where links fail)."""
    target = folder / "blobs" / etag
    link = folder / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() == target.resolve():
            return link
        link.unlink()
    try:
        link.symlink_to(os.path.relpath(target, link.parent))
    except OSError:  # filesystems without symlinks
        import shutil

        shutil.copyfile(target, link)
    return link
