"""The embedded hub: a data dir's repos read directly, with no server running.

Files are exposed as a snapshot folder of symlinks into the data dir's blob store, under
<data_dir>/snapshots/<type>s--<ns>--<name>/<commit>/, so loaders see an ordinary model folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from cove.errors import RepoNotFoundError


def data_dir() -> Path:
    return Path(os.environ.get("COVE_DATA_DIR") or "~/.cove").expanduser()


def local_snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    repo_type: str = "model",
    root: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The repo's files at revision as a local folder, or None when this data dir has no such repo.

    A missing revision of an existing repo raises RevisionNotFoundError.
    """
    base = Path(root).expanduser() if root else data_dir()
    if not (base / "hub.sqlite").is_file():
        return None
    from cove.hub.storage.repos import RepoStore

    store = RepoStore(base)
    try:
        with store.session() as s:
            try:
                repo = store.get_repo(s, repo_type, repo_id)
            except RepoNotFoundError:
                return None
            commit = store.resolve(s, repo, revision)
            tree = store.tree(s, commit)
    finally:
        store.engine.dispose()
    snap = base / "snapshots" / f"{repo_type}s--{repo_id.replace('/', '--')}" / commit
    for path, entry in tree.items():
        link = snap / path
        if link.is_symlink() or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(store.blobs.path(entry.sha256))
        except OSError:
            import shutil

            shutil.copyfile(store.blobs.path(entry.sha256), link)
    snap.mkdir(parents=True, exist_ok=True)
    return snap
